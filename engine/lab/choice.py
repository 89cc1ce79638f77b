"""Which run a page opens on when the link names none: the one that best serves it, and why.

The newest run is often the wrong one: the PCA baseline just fitted, a model still in its first
seconds. A page ranks the runs it can use by

  1. how finished: done, then stopped with a checkpoint (cancelled, interrupted), then still training;
  2. whose: the visitor's own (`workspace`), then the shared ones a presenter prepared (a workshop kit's runs,
     engine.runs.kit, and the gallery's), then any other they may see: a visitor with no finished model of
     their own gets the kit's at once, and one of their own as soon as they have one;
  3. what the page prefers (`prefer(config) -> number`, higher first: the explorer prefers a VAE with a
     2-number code, which fills every one of its panels);
  4. learned models before the PCA baseline (a closed-form fit is the yardstick, not the exhibit);
  5. quality (`quality(metrics) -> number`, lower first: the test error relative to PCA by default);
  6. the newest.

and says in one sentence what made the choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from engine.models import is_model
from engine.runs import finite
from engine.runs.workspace import owner

FINISHEDNESS = {"done": 0, "cancelled": 1, "interrupted": 1, "running": 2, "queued": 3}


def relative_error(metrics: dict) -> float | None:
    """Test MSE as a share of PCA's with as many components (lower is better)."""
    return finite(metrics.get("mse_vs_pca"))


def knn_error(metrics: dict) -> float | None:
    """1 − the codes' 5-NN accuracy (lower is better): how well the codes keep the classes apart."""
    acc = finite(metrics.get("knn_accuracy"))
    return None if acc is None else 1.0 - acc


def auroc_error(metrics: dict) -> float | None:
    """1 − a one-class run's AUROC on the test split (lower is better)."""
    auroc = finite(metrics.get("anomaly_auroc"))
    return None if auroc is None else 1.0 - auroc


# quality name → (metrics → a number, lower is better; the number → the words that say why it won)
QUALITIES: dict[str, tuple[Callable[[dict], float | None], Callable[[float], str]]] = {
    "reconstruction": (relative_error, lambda v: f"the lowest test error relative to PCA ({v:.2f}×)"),
    "clusters": (knn_error, lambda v: f"the best 5-NN accuracy of its codes ({1 - v:.1%})"),
    "anomaly": (auroc_error, lambda v: f"the best AUROC at telling the left-out classes apart ({1 - v:.3f})"),
}


MINE, PREPARED, OTHERS = 0, 1, 2  # whose a run is, as the ranking sees it (the module docstring's rule 2)


def whose(config: dict, run_id: str = "", workspace: str | None = None, gallery=frozenset()) -> int:
    """MINE, PREPARED (a kit's or a pinned run) or OTHERS for a run of `config`, seen from `workspace`.

    workspace None: every run is the visitor's (local mode, where one person owns the whole runs folder).
    """
    if workspace is None or owner(config) == workspace:
        return MINE
    return PREPARED if config.get("kit") or run_id in gallery else OTHERS


@dataclass(frozen=True)
class Choice:
    run_id: str
    reason: str  # "the finished model with the lowest test error relative to PCA (0.41×)"


def best_run(summaries: list[dict], configs: dict[str, dict], *, quality: str = "reconstruction",
             prefer: Callable[[dict], float] | None = None, prefer_why: str = "", workspace: str | None = None,
             gallery=frozenset()) -> Choice | None:
    """The best of the runs in `summaries` (Run.summary() dicts; `configs`: id → config.json); None when empty.

    quality: a QUALITIES name; prefer(config) → a number (higher first) and prefer_why, the words for
    it ("a VAE with a 2-D code, which fills every panel"); workspace: the visitor's (None: every run is
    theirs), gallery: the pinned run ids (see `whose`).
    """
    if not summaries:
        return None
    measure, words = QUALITIES[quality]

    def key(s: dict) -> tuple:
        config = configs.get(s["id"]) or {}
        q = measure(s.get("metrics") if isinstance(s.get("metrics"), dict) else {})
        return (FINISHEDNESS.get(s.get("state"), 4), whose(config, s["id"], workspace, gallery),
                -(prefer(config) if prefer else 0.0), is_model(config.get("model"), closed_form=True),
                math.inf if q is None else q)

    newest_first = sorted(summaries, key=lambda s: -(finite(s.get("created_at")) or 0.0))
    ranked = sorted(newest_first, key=key)  # stable: ties stay newest first
    best = ranked[0]
    if len(ranked) == 1:
        return Choice(best["id"], "the only run that fits this page")
    state, mine, pref, baseline, q = key(best)
    parts = [("the finished", "the most finished", "the furthest")[min(state, 2)]
             + (" PCA baseline (no learned model fits)" if baseline else " model")]
    if mine == MINE and any(key(s)[1] != MINE for s in ranked):
        parts.append(" of your own")
    elif mine == PREPARED:
        parts.append(" prepared for everyone (the workshop kit's or the gallery's; you have no finished one of "
                     "your own that fits yet)")
    if prefer_why and pref < 0 and any(key(s)[2] > pref for s in ranked):
        parts.append(f", {prefer_why},")
    rivals = [s for s in ranked[1:] if key(s)[:4] == (state, mine, pref, baseline)]
    if rivals and q != math.inf:
        parts.append(f" with {words(q)}")
    elif rivals:
        parts.append(", the newest of those")
    return Choice(best["id"], "".join(parts).rstrip(","))
