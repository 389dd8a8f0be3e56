"""Progress shows when a person watches (TTY or Jupyter kernel), never in CI or with verbose=0."""

import io
import re
import sys
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from ml_toolbox.progress import in_notebook, is_watching, progress_bar, track


class Tty(io.StringIO):
    def isatty(self):
        return True


def terminal():
    return Console(file=io.StringIO(), force_terminal=True, width=80)


@pytest.mark.parametrize("verbose, stream, env, notebook, expected", [
    (1, Tty(), {}, False, True),                    # a terminal
    (1, io.StringIO(), {}, True, True),             # a notebook
    (1, io.StringIO(), {}, False, False),           # a pipe or a file: nobody
    (0, Tty(), {}, True, False),                    # verbose=0: silent everywhere
    (False, Tty(), {}, False, False),
    (None, Tty(), {}, False, False),
    (2, Tty(), {"CI": "true"}, False, False),        # CI: silent even on a TTY
    (1, Tty(), {"CI": "1"}, True, False),
    (1, Tty(), {"CI": "false"}, False, True),        # CI explicitly off
    (1, Tty(), {"CI": "0"}, False, True),
    (1, Tty(), {"CI": ""}, False, True),
])
def test_is_watching(verbose, stream, env, notebook, expected):
    assert is_watching(verbose, stream=stream, env=env, notebook=notebook) is expected


def test_closed_stream_is_nobody():
    class Closed:
        def isatty(self):
            raise ValueError("I/O operation on closed file")

    assert is_watching(1, stream=Closed(), env={}, notebook=False) is False


@given(st.text(max_size=8))
def test_any_ci_value_but_a_false_one_silences(value):
    silent = value.strip().lower() not in {"", "0", "false", "no", "off"}
    assert is_watching(1, stream=Tty(), env={"CI": value}, notebook=False) is (not silent)


def test_in_notebook_reads_the_ipython_kernel(monkeypatch):
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert in_notebook() is True
    fake.get_ipython = lambda: types.SimpleNamespace()  # a terminal IPython: no kernel
    assert in_notebook() is False
    fake.get_ipython = lambda: None
    assert in_notebook() is False
    monkeypatch.delitem(sys.modules, "IPython")
    assert in_notebook() is False


def test_progress_bar_draws_on_a_terminal_console():
    console = terminal()
    ticks = iter(range(100))
    with progress_bar(console=console, env={}, get_time=lambda: float(next(ticks))) as progress:
        task = progress.add_task("stages", total=3)
        for _ in range(3):
            progress.advance(task)
    out = console.file.getvalue()
    assert "stages" in out and "3/3" in out


@pytest.mark.parametrize("kwargs", [{"verbose": 0, "env": {}}, {"verbose": 1, "env": {"CI": "true"}},
                                    {"disable": True, "env": {}}])
def test_progress_bar_is_silent_when_nobody_watches(kwargs):
    console = terminal()
    with progress_bar(console=console, **kwargs) as progress:
        assert progress.disable
        task = progress.add_task("stages", total=2)
        progress.advance(task, 2)
    assert console.file.getvalue() == ""


def test_progress_bar_silent_on_a_console_that_is_not_a_terminal():
    console = Console(file=io.StringIO(), width=80)  # a file: not a terminal, not a notebook
    assert progress_bar(console=console, env={}).disable


def test_disable_false_forces_the_display():
    console = terminal()
    with progress_bar(console=console, disable=False, env={"CI": "true"}) as progress:
        progress.add_task("forced", total=1)
    assert "forced" in console.file.getvalue()


def test_track_yields_every_item_and_draws():
    console = terminal()
    assert list(track(["a", "b", "c"], "batches", console=console, env={})) == ["a", "b", "c"]
    out = console.file.getvalue()
    assert "batches" in out and "3/3" in out


def test_track_silent_is_the_plain_iterable():
    console = terminal()
    gen = (i for i in range(5))  # no len: total unknown, still fine
    assert list(track(gen, "rows", console=console, verbose=0)) == [0, 1, 2, 3, 4]
    assert console.file.getvalue() == ""


def test_track_with_an_iterator_and_total():
    console = terminal()
    assert sum(track(iter(range(4)), "rows", total=4, console=console, env={})) == 6
    assert "4/4" in console.file.getvalue()


def test_notebook_without_ipywidgets_stays_silent(monkeypatch):
    import ml_toolbox.progress as progress

    monkeypatch.setattr(progress, "_has_widgets", lambda: False)
    assert progress_bar(env={}, notebook=True).disable
    monkeypatch.setattr(progress, "_has_widgets", lambda: True)
    assert not progress_bar(env={}, notebook=True).disable
    assert progress_bar(env={}, notebook=True, verbose=0).disable
    jupyter = Console(file=io.StringIO(), force_jupyter=True)
    assert not progress_bar(env={}, console=jupyter).disable
    monkeypatch.setattr(progress, "_has_widgets", lambda: False)
    assert progress_bar(env={}, console=jupyter).disable


def test_a_console_decides_for_itself():
    assert is_watching(1, env={}, console=terminal()) is True
    assert is_watching(1, env={}, console=Console(file=io.StringIO())) is False
    assert is_watching(1, env={"CI": "true"}, console=terminal()) is False
    assert is_watching(0, env={}, console=terminal()) is False
    jupyter = Console(file=io.StringIO(), force_jupyter=True)
    assert is_watching(1, env={}, console=jupyter) is True


def test_verbose_fit_draws_a_bar_per_fitting_run_only_when_watched(monkeypatch):
    import io

    import numpy as np
    from rich.console import Console
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    import ml_toolbox.progress as progress
    from ml_toolbox import UnifiedMLPipeline

    X = np.arange(20, dtype=float).reshape(10, 2)
    y = np.array([0, 1] * 5)
    monkeypatch.setenv("CI", "true")
    quiet = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=LogisticRegression(),
                              verbose=1)
    assert quiet._stage_progress() is None  # CI: nobody watches, nothing attached
    quiet.fit(X, y)

    monkeypatch.delenv("CI")
    monkeypatch.setattr(progress, "is_watching", lambda *a, **k: True)
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=LogisticRegression(),
                             verbose=1)
    pipe.__dict__["_progress_plugin"] = progress.StageProgress(console=console, disable=False)
    pipe.fit(X, y)
    drawn = console.file.getvalue()
    assert "feature_pipeline fit" in drawn and "training_pipeline fit" in drawn
    before = len(console.file.getvalue())
    pipe.predict(X)  # serving draws nothing
    assert len(console.file.getvalue()) == before


def test_chunked_batch_predictions_report_progress_when_verbose(monkeypatch):
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    import ml_toolbox.progress as progress
    from ml_toolbox import UnifiedMLPipeline

    seen = []

    def spy(iterable, description="working", **kwargs):
        seen.append((description, kwargs.get("total"), kwargs.get("verbose")))
        return iterable

    monkeypatch.setattr(progress, "track", spy)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 3))
    y = (X[:, 0] > 0).astype(int)
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=LogisticRegression(),
                             verbose=1).fit(X, y)
    whole = pipe.predict_proba(X)
    pipe.inference_pipeline.batch_size = 300
    np.testing.assert_allclose(pipe.predict_proba(X), whole)  # chunks: same up to BLAS rounding
    assert seen == [("inference_pipeline predict_proba", 4, 1)]
    pipe.set_params(verbose=0)
    pipe.predict(X)
    assert len(seen) == 1  # silent with verbose=0


@given(width=st.integers(60, 160), description=st.text(alphabet="abcdefgh _", min_size=1,
                                                       max_size=120).map(str.strip).filter(bool))
def test_progress_bar_keeps_bar_count_and_times_in_a_narrow_terminal(width, description):
    """The description gives way (cut with an ellipsis); spinner, bar, count, elapsed and remaining
    time stay on one line, at 80 columns as at any width."""
    console = Console(file=io.StringIO(), force_terminal=True, width=width, color_system=None)
    with progress_bar(console=console, disable=False) as progress:
        task = progress.add_task(description, total=12)
        progress.advance(task, 5)
    frame = console.file.getvalue().split("\r\x1b[2K")[-1].replace("\x1b[?25h", "").rstrip("\n")
    assert "\n" not in frame and len(frame) <= width
    assert re.search(r"━+.* 5/12 \d:\d\d:\d\d (-:--:--|\d:\d\d:\d\d)$", frame), frame
    shown = frame[2:frame.index(" ━") if " ━" in frame else None].strip()
    assert shown == description.strip() or shown.endswith("…") or shown == ""
