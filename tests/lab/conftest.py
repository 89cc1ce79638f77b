"""Fixtures the page back-ends' tests share."""

from __future__ import annotations

import pytest

from engine.data import load_dataset


@pytest.fixture(scope="session")
def mnist():
    return load_dataset("mnist-5k")


@pytest.fixture(scope="session")
def pca8(mnist):
    """PCA with 8 directions of mnist-5k (one fit for the session: fits are slow on a busy machine)."""
    from engine.lab import pca_vs_ae

    return pca_vs_ae.fit_pca(mnist, 8)
