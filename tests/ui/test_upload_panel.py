"""The upload panel (ui/panels/uploads.py) alone in AppTest: upload, what was kept and skipped, the error of a
malformed archive shown as text, the picker offering the upload, delete; one workspace never sees another's."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from engine.data import clear_cache, list_uploads, save_upload

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "pages" / "upload_panel_app.py"


@pytest.fixture
def store(runs_dir, tmp_path, monkeypatch, fresh_data_cache) -> Path:
    monkeypatch.setenv("LATENT_LAB_UPLOADS", str(tmp_path / "uploads"))
    monkeypatch.delenv("LATENT_LAB_MAX_UPLOADS", raising=False)
    clear_cache()
    return tmp_path


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (28, 28), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def digits_zip(broken: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(6):
            zf.writestr(f"{i % 2}/{i}.png", png(i))
        if broken:
            zf.writestr("1/broken.png", png(9)[:40])
    return buf.getvalue()


def panel(workspace: str = "local") -> AppTest:
    at = AppTest.from_file(str(SCRIPT), default_timeout=60)
    at.query_params["ws"] = workspace
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def upload(at: AppTest, filename: str, data: bytes, name: str = "") -> AppTest:
    (uploader,) = at.get("file_uploader")
    uploader.set_value((filename, data, "application/zip")).run()
    if name:
        at.text_input[0].set_value(name).run()
    at.button(key="uploads_save").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_an_upload_is_kept_listed_offered_and_deleted(store):
    at = panel()
    assert at.button(key="uploads_save").disabled  # nothing chosen yet
    assert "No uploads yet" in at.caption[0].value
    upload(at, "digits.zip", digits_zip(broken=True), name="My digits")
    (success,) = at.success
    assert "Kept **6** images in 2 classes as 'my-digits'" in success.value and "skipped 1 file" in success.value
    (skipped,) = at.expander
    assert skipped.label == "Skipped files (1)" and "1/broken.png" in skipped.markdown[0].value
    assert "upload:local/my-digits" in at.selectbox(key="picker").options
    assert "mnist-5k" in at.selectbox(key="picker").options
    assert at.get("file_uploader")[0].value is None  # emptied: a second click cannot store it twice

    at.button(key="uploads_delete_my-digits").click().run()
    assert not at.exception
    assert list_uploads("local") == [] and "upload:local/my-digits" not in at.selectbox(key="picker").options


def test_a_malformed_archive_is_refused_with_its_message_as_text(store):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.png", png(0))
    at = upload(panel(), "[log in](https://evil.example).zip", buf.getvalue())
    (error,) = at.error
    assert "unsafe path" in error.value and "was not stored" in error.value
    assert "\\[log in\\](https\\://" in error.value  # the link's syntax escaped: shown as text, not a link
    assert not at.success and list_uploads("local") == []
    assert [p for p in store.rglob("*") if p.is_file()] == []  # nothing written, in the uploads folder or elsewhere


def test_a_workspace_sees_only_its_own_uploads(store):
    save_upload("alice", "digits.zip", digits_zip())
    at = panel("bob")
    assert "No uploads yet" in at.caption[0].value
    assert not any(o.startswith("upload:") for o in at.selectbox(key="picker").options)
    assert not [b for b in at.button if b.key.startswith("uploads_delete_")]
    alice = panel("alice")
    assert "upload:alice/digits" in alice.selectbox(key="picker").options
    assert alice.button(key="uploads_delete_digits")
