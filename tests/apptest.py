"""What the page tests share: app.py run by Streamlit's AppTest on one page, and reading what it drew."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60  # the first run imports torch and plotly


def render_page(page: str | None = None, query: dict | None = None, state: dict | None = None) -> AppTest:
    """app.py on `page` (e.g. "pages/draw.py"; None: the home page) with a URL query and session state."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    for key, value in (state or {}).items():
        at.session_state[key] = value
    if page:
        at.switch_page(page)
    return rerun(at)


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def walk(node):
    """Every element and block below `node`, depth first."""
    for child in getattr(node, "children", {}).values():
        yield child
        yield from walk(child)


def keyed_block(at: AppTest, key: str):
    """The container made with st.container(key=key) (its id ends with the key)."""
    block = next((b for b in walk(at.main) if str(getattr(getattr(b, "proto", None), "id", "")).endswith(f"-{key}")),
                 None)
    assert block is not None, f"no container with key {key}"
    return block


def media_bytes(media: dict, url: str) -> bytes:
    """The bytes behind an image URL the page drew, from the `media` fixture's store."""
    return media[url.rsplit("/", 1)[1].split(".")[0]]


def plotly_values(v) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array {"dtype": "f4", "bdata": base64, "shape": …}."""
    if isinstance(v, dict) and "bdata" in v:
        out = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return out.reshape([int(n) for n in str(v["shape"]).split(",")]) if "shape" in v else out
    return np.asarray(v)


def add_run(runs_dir: Path, source: Path, run_id: str | None = None) -> Path:
    """Copy a finished run into the runs folder the app reads (under its own name by default)."""
    return shutil.copytree(source, Path(runs_dir) / (run_id or Path(source).name))


def train_tiny(parent: Path, run_id: str, model: str, model_config: dict, train: dict | None = None) -> Path:
    """A finished mnist-5k run trained in this process (default: one epoch on one thread)."""
    from engine.runs import Run, make_run_config
    from engine.train import train_run

    train = {"epochs": 1, "threads": 1} if train is None else train
    run = Run.create(parent, make_run_config(model, "mnist-5k", model_config, train), run_id=run_id)
    train_run(run)
    assert run.status().state == "done", run.status()
    return run.path
