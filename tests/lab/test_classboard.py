"""The class board: drawings sent at once from many threads and processes, caps, nicknames, who may clear it,
and each drawing encoded and placed by a real model."""

from __future__ import annotations

import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest

from engine.eval.codes import encode, reconstruct
from engine.lab import classboard as cb
from engine.lab import latent_map as maps
from engine.runs.loaded import load_run
from engine.runs.store import Run
from engine.runs.workspace import AccessError, Actor

LOCAL = Actor.local()
ALICE, BOB, PRESENTER = Actor("a" * 20), Actor("b" * 20), Actor("c" * 20, presenter=True)


def digit(seed: int) -> np.ndarray:
    """A 28×28 drawing: a random stroke-like blob, different for each seed."""
    rng = np.random.default_rng(seed)
    x = np.zeros((28, 28), np.float32)
    r, c = rng.integers(6, 22, size=2)
    x[r - 4:r + 4, c - 2:c + 2] = rng.uniform(0.5, 1.0, size=(8, 4))
    return x


@pytest.fixture
def hosted(monkeypatch):
    monkeypatch.setenv("LATENT_LAB_MODE", "hosted")


@pytest.fixture
def local(monkeypatch):
    monkeypatch.delenv("LATENT_LAB_MODE", raising=False)


def test_a_drawing_comes_back_as_sent(tmp_path, local):
    board = cb.ClassBoard(tmp_path)
    x = digit(1)
    sent = board.send(x, "  Ada   Lovelace ", "run-1", "mnist-5k", LOCAL)
    (got,) = board.drawings()
    assert got.id == sent.id and got.nickname == "Ada Lovelace" and got.run_id == "run-1"
    assert got.workspace == "local" and got.dataset == "mnist-5k"
    assert np.abs(got.x - x).max() <= 0.5 / 255 + 1e-6  # stored as 8-bit grey levels
    assert board.count() == 1
    assert board.drawings(dataset="fashion-mnist") == []


@pytest.mark.parametrize("given, shown", [
    ("Ada", "Ada"),
    ("  Grace   Hopper\t", "Grace Hopper"),
    ("<script>alert(1)</script>", "scriptalert1script"),
    ("**bold** [link](http://x)", "bold linkhttpx"),
    ("Zoë O'Neil-Smith", "Zoë O'Neil-Smith"),
    ("ｆｕｌｌｗｉｄｔｈ", "fullwidth"),  # NFKC
    ("evil\u202eoverride\u0000nul", "eviloverridenul"),  # bidi overrides and control characters go
    ("x" * 100, "x" * cb.NICKNAME_MAX),
])
def test_nicknames_keep_letters_digits_and_a_little_punctuation(given, shown):
    assert cb.sanitise_nickname(given) == shown
    assert len(cb.sanitise_nickname(given)) <= cb.NICKNAME_MAX


@pytest.mark.parametrize("bad", ["", "   ", "!!!<>**", 42])
def test_a_nickname_with_nothing_left_is_refused_with_what_to_give(bad):
    with pytest.raises(ValueError, match="nickname"):
        cb.sanitise_nickname(bad)


@pytest.mark.parametrize("x, message", [
    (np.zeros((28, 28)), "empty"),
    (np.ones((20, 20)), "28×28"),
    (np.full((28, 28), 2.0), r"\[0, 1\]"),
    (np.full((28, 28), np.nan), r"\[0, 1\]"),
])
def test_a_malformed_drawing_is_refused(tmp_path, x, message):
    with pytest.raises(ValueError, match=message):
        cb.ClassBoard(tmp_path).send(x, "Ada", "run-1", "mnist-5k", LOCAL)
    assert cb.ClassBoard(tmp_path).count() == 0


def test_a_run_id_that_is_not_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="model run"):
        cb.ClassBoard(tmp_path).send(digit(0), "Ada", "../etc", "mnist-5k", LOCAL)


def _check_every_listed_file_reads(board: cb.ClassBoard, stop: threading.Event, bad: list) -> None:
    """A reader beside the writers: every drawing file it lists must parse (never half a file)."""
    while not stop.is_set():
        for path in board._files():
            if cb._parse(path) is None:
                bad.append(path.name)


def test_thirty_two_threads_sending_at_once_lose_nothing_and_no_reader_sees_half_a_file(tmp_path, local):
    board = cb.ClassBoard(tmp_path, cb.BoardLimits(per_workspace=0, board=1000))
    stop, bad = threading.Event(), []
    reader = threading.Thread(target=_check_every_listed_file_reads, args=(board, stop, bad))
    reader.start()
    barrier = threading.Barrier(32)

    def send(i: int) -> str:
        barrier.wait()  # all at once
        return board.send(digit(i), f"student {i}", "run-1", "mnist-5k", Actor(f"{i:020d}")).id

    try:
        with ThreadPoolExecutor(32) as pool:
            ids = list(pool.map(send, range(32)))
    finally:
        stop.set()
        reader.join()
    drawings = board.drawings()
    assert len(set(ids)) == 32 and sorted(ids) == [d.id for d in drawings]  # ids sort in sending order
    assert {d.nickname for d in drawings} == {f"student {i}" for i in range(32)}
    for d in drawings:  # each file holds its own sender's drawing
        i = int(d.nickname.split()[1])
        assert d.workspace == f"{i:020d}" and np.abs(d.x - digit(i)).max() <= 0.5 / 255 + 1e-6
    assert not bad, bad
    assert not list(board.folder.glob(".*.tmp"))


def _send_from_a_process(args) -> list[str]:
    runs_dir, worker, n = args
    board = cb.ClassBoard(runs_dir, cb.BoardLimits(per_workspace=0, board=1000))
    return [board.send(digit(100 * worker + k), f"p{worker} k{k}", "run-1", "mnist-5k", Actor(f"{worker:020d}")).id
            for k in range(n)]


def test_four_processes_sending_at_once_lose_nothing(tmp_path, local):
    with ProcessPoolExecutor(4, mp_context=get_context("spawn")) as pool:
        ids = [i for chunk in pool.map(_send_from_a_process, [(str(tmp_path), w, 10) for w in range(4)]) for i in chunk]
    drawings = cb.ClassBoard(tmp_path).drawings()
    assert len(ids) == len(set(ids)) == 40
    assert sorted(ids) == [d.id for d in drawings]
    assert {d.nickname for d in drawings} == {f"p{w} k{k}" for w in range(4) for k in range(10)}


def test_one_visitor_cannot_flood_the_board_even_clicking_ten_times_at_once(tmp_path, hosted):
    board = cb.ClassBoard(tmp_path, cb.BoardLimits(per_workspace=3, board=100))
    barrier = threading.Barrier(10)

    def send(i: int):
        barrier.wait()
        try:
            return board.send(digit(i), "Ada", "run-1", "mnist-5k", ALICE)
        except cb.BoardLimitsError as e:
            return e

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(send, range(10)))
    refused = [r for r in results if isinstance(r, cb.BoardLimitsError)]
    assert len(refused) == 7 and board.count() == 3
    assert "the most one visitor may have" in str(refused[0]) and "Take back mine" in str(refused[0])
    board.send(digit(0), "Bob", "run-1", "mnist-5k", BOB)  # another visitor still may
    board.send(digit(0), "Presenter", "run-1", "mnist-5k", PRESENTER)
    assert board.withdraw(ALICE) == 3
    assert [d.nickname for d in board.drawings()] == ["Bob", "Presenter"]
    board.send(digit(1), "Ada again", "run-1", "mnist-5k", ALICE)  # taking hers back made room


def test_the_whole_board_has_a_cap_too(tmp_path, hosted):
    board = cb.ClassBoard(tmp_path, cb.BoardLimits(per_workspace=3, board=5))
    visitors = [Actor(f"{i:020d}") for i in range(3)]
    sent, refused = 0, []
    for k in range(4):
        for v in visitors:
            try:
                board.send(digit(k), "someone", "run-1", "mnist-5k", v)
                sent += 1
            except cb.BoardLimitsError as e:
                refused.append(str(e))
    assert sent == 5 and board.count() == 5
    assert "the class board is full (5 drawings)" in refused[0] and "presenter" in refused[0]


def test_limits_come_from_the_environment_and_local_mode_has_no_per_visitor_cap(monkeypatch):
    monkeypatch.setenv("LATENT_LAB_CLASS_PER_WS", "2")
    monkeypatch.setenv("LATENT_LAB_CLASS_MAX", "50")
    assert cb.BoardLimits.from_env(hosted_mode=True) == cb.BoardLimits(per_workspace=2, board=50)
    assert cb.BoardLimits.from_env(hosted_mode=False) == cb.BoardLimits(per_workspace=0, board=50)


def test_a_visitor_sees_their_own_drawings_and_the_presenter_everyones(tmp_path, hosted):
    board = cb.ClassBoard(tmp_path)
    board.send(digit(1), "Ada", "run-1", "mnist-5k", ALICE)
    board.send(digit(2), "Bob", "run-1", "mnist-5k", BOB)
    assert [d.nickname for d in board.drawings(ALICE)] == ["Ada"]
    assert [d.nickname for d in board.drawings(BOB)] == ["Bob"]
    assert [d.nickname for d in board.drawings(PRESENTER)] == ["Ada", "Bob"]


def test_only_the_presenter_clears_the_board(tmp_path, hosted):
    board = cb.ClassBoard(tmp_path)
    board.send(digit(1), "Ada", "run-1", "mnist-5k", ALICE)
    board.send(digit(2), "Bob", "run-1", "mnist-5k", BOB)
    with pytest.raises(AccessError, match="only the presenter clears the class board"):
        board.clear(ALICE)
    assert board.count() == 2
    assert board.clear(PRESENTER) == 2
    assert board.count() == 0 and board.drawings(PRESENTER) == []


def test_in_local_mode_the_one_person_clears_it(tmp_path, local):
    board = cb.ClassBoard(tmp_path)
    board.send(digit(1), "Ada", "run-1", "mnist-5k", LOCAL)
    assert board.clear(LOCAL) == 1 and board.count() == 0


def test_half_written_and_foreign_files_are_never_read(tmp_path, local):
    board = cb.ClassBoard(tmp_path)
    board.send(digit(1), "Ada", "run-1", "mnist-5k", LOCAL)
    folder = board.folder
    (folder / f".{'0' * 20}-deadbeef.json.abc123.tmp").write_text('{"nickname": "ha')  # a killed writer's temp file
    (folder / f"{'1' * 20}-deadbeef.json").write_text('{"nickname": "Eve", "x": "AAAA"}')  # not a drawing
    (folder / "notes.json").write_text("{}")
    (folder / f"{'2' * 20}-cafebabe.json").symlink_to(folder / "notes.json")  # never followed
    assert [d.nickname for d in board.drawings()] == ["Ada"]
    assert board.clear(LOCAL) == 3  # the presenter's clear takes the files that are not drawings too
    assert board.drawings() == [] and (folder / "notes.json").exists()


def test_each_drawing_is_encoded_by_the_model_and_placed_on_its_map(tmp_path, local, finished_pca_run):
    loaded = load_run(Run(finished_pca_run), encodes=True)
    loaded.token = ("test", 1)
    board = cb.ClassBoard(tmp_path)
    for i, name in enumerate(["Ada", "Bob", "Cy"]):
        board.send(digit(i), name, loaded.run_id, loaded.dataset, LOCAL)
    drawings = board.drawings(dataset=loaded.dataset)
    points = board.points(loaded, drawings)
    x = np.stack([d.x for d in drawings])
    np.testing.assert_allclose(np.stack([p.z for p in points]), encode(loaded, x[:, None]), atol=1e-5)
    np.testing.assert_allclose(np.stack([p.x_hat for p in points]), reconstruct(loaded, x[:, None]), atol=1e-5)
    np.testing.assert_allclose([p.mse for p in points], ((x - reconstruct(loaded, x[:, None])) ** 2).mean((1, 2)),
                               rtol=1e-5)
    again = board.points(loaded, drawings)
    assert all(a is b for a, b in zip(points, again))  # cached per drawing and checkpoint

    rng = np.random.default_rng(0)
    z_map = rng.normal(size=(200, loaded.latent_dim)).astype(np.float32)
    projection = maps.fit(z_map, "pca")
    xy = cb.place(projection, points)
    mean, w = projection.model
    np.testing.assert_allclose(xy, (np.stack([p.z for p in points]) - mean) @ w, atol=1e-5)
    board.send(digit(9), "Dee", loaded.run_id, loaded.dataset, LOCAL)
    more = board.points(loaded, board.drawings())
    np.testing.assert_allclose(cb.place(projection, more)[:3], xy, atol=1e-6)  # the earlier ones stay put
    assert cb.place(projection, []).shape == (0, 2)

    # a UMAP (or t-SNE) map: the neighbour rule, never UMAP's transform (this map has no fitted UMAP to call)
    umap_like = maps.Projection("umap", rng.normal(size=(200, 2)).astype(np.float32), z_map)
    np.testing.assert_allclose(cb.place(umap_like, points),
                               maps.neighbour_placement(z_map, umap_like.xy, np.stack([p.z for p in points])),
                               atol=1e-6)
    with pytest.raises(ValueError, match="latent_dim"):
        cb.place(maps.fit(z_map[:, :3], "pca"), more)
