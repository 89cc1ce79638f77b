"""ui.resources.on_model_thread: the pages' forward passes run on a few threads the server keeps."""

import threading

import pytest

from ui.resources import on_model_thread


def test_the_pass_runs_on_a_kept_thread_and_returns_its_answer():
    def where(a, b=0):
        return threading.current_thread(), a + b

    names = set()
    for i in range(6):  # each call from a fresh thread, as Streamlit runs each rerun
        out = {}

        def call(out=out, i=i):
            out["r"] = on_model_thread(where, i, b=1)

        caller = threading.Thread(target=call)
        caller.start()
        caller.join()
        thread, value = out["r"]
        assert value == i + 1
        assert thread is not caller and thread.name.startswith("latent-lab-model")
        names.add(thread.name)
    assert len(names) < 6  # the same few threads again, not one per caller


def test_an_error_reaches_the_caller():
    def fail():
        raise ValueError("a bad checkpoint")

    with pytest.raises(ValueError, match="a bad checkpoint"):
        on_model_thread(fail)
