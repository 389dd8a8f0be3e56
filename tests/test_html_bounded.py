"""Notebook HTML that stays readable and bounded at scale (issue 24, item 4): the monitor with 100,000
recorded runs and a store with 1,000 versions show their latest rows and a count of the rest, with the
scoped CSS of one shared helper (ml_toolbox._html), local times to the second, and a bare estimator
shown as an estimator.
"""

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ml_toolbox import _html
from ml_toolbox.debugger import Trace
from ml_toolbox.monitor import PipelineMetrics, PipelineMonitor, StageRecord
from ml_toolbox.persistence import PipelinePersistence
from ml_toolbox.store.views import StoreView


def _body_rows(page):
    """The data rows of a page (not the header, the group headings or the count line)."""
    return [r for r in re.findall(r"<tr(?: class=\"\w+\")?>(.*?)</tr>", page)
            if "<th" not in r and 'class="hint"' not in r]


def _in_local_tz(monkeypatch):
    monkeypatch.setenv("TZ", "IST-05:30")  # POSIX rule: UTC+05:30, needs no tz database
    time.tzset()


@pytest.fixture
def local_tz(monkeypatch):
    _in_local_tz(monkeypatch)
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


# -- the shared helper ------------------------------------------------------------------------------
@given(n=st.integers(0, 300), limit=st.integers(0, 150), extra=st.integers(0, 50))
@settings(max_examples=40, deadline=None)
def test_the_helper_shows_the_latest_rows_and_counts_the_rest(n, limit, extra):
    rows = [[str(i), f"<{i}>"] for i in range(n)]
    page = _html.table("cap", ["#", "text"], rows, numeric=[0], limit=limit)
    shown = min(n, limit)
    assert len(_body_rows(page)) == shown
    assert (f"{n - shown:,} earlier rows not shown" in page) == (n > shown)
    if shown:
        assert f'<td class="num">{n - 1}</td>' in page and f"&lt;{n - shown}&gt;" in page
    # rows holding only the latest ones, with the total: the same count line
    part = _html.table("cap", ["#", "text"], rows[n - shown:], total=n + extra)
    assert (f"{n - shown + extra:,} earlier rows not shown" in part) == (n - shown + extra > 0)


def test_the_css_is_scoped_to_the_tables_own_class():
    css = _html.CSS
    selectors = re.findall(r"([^{}]+)\{", css.removeprefix("<style>"))
    assert selectors and all(part.strip().startswith(".mlt-table")
                             for sel in selectors for part in sel.split(","))


def test_local_time_is_to_the_second(local_tz):
    assert _html.local_time("2023-11-14T22:13:20.400000+00:00") == "2023-11-15 03:43:20"
    assert _html.local_time(1_700_000_000.4) == "2023-11-15 03:43:20"
    assert _html.local_time("not a time") == "not a time" and _html.local_time(None) == "-"


def test_the_trace_monitor_and_store_share_the_helper(tmp_path):
    store = PipelinePersistence(tmp_path / "s")
    store.save(DummyClassifier().fit([[0], [1]], [0, 1]), "m")
    monitor = PipelineMonitor()
    monitor.record(PipelineMetrics("p", "fit", stages=[StageRecord("s", 0, "fit", 0.0, 0.1)]))
    for page in (Trace([])._repr_html_(), monitor._repr_html_(), store._repr_html_(), store.show("m")._repr_html_()):
        assert page.startswith(_html.CSS + '<div class="mlt-table">')
        assert page.count("<style>") == 1


# -- the monitor --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_monitor():
    """100,000 recorded runs of 500 pipelines (3 stages each)."""
    monitor = PipelineMonitor(history_size=100_000)
    for i in range(100_000):
        stages = [StageRecord(f"stage_{j}", j, "transform", 1.7e9 + i, 0.001 * (j + 1), rows_in=100,
                              status="failed" if (i, j) == (99_999, 2) else "success") for j in range(3)]
        monitor.record(PipelineMetrics(f"pipe_{i % 500}", "transform", start_time=1.7e9 + i, duration=0.01,
                                       stages=stages))
    return monitor


@pytest.mark.slow
def test_a_monitor_of_100000_runs_renders_a_small_page(big_monitor, monkeypatch):
    _in_local_tz(monkeypatch)
    try:
        page = big_monitor._repr_html_()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert len(big_monitor) == 100_000
    assert len(page.encode()) < 40_000
    rows = _body_rows(page)
    assert len(rows) == PipelineMonitor.html_rows
    assert f"{1500 - PipelineMonitor.html_rows:,} stage rows of earlier pipelines not shown" in page
    # the latest pipeline comes last, its heading with its last run in local time, to the second
    headings = re.findall(r'<th class="group" colspan="10">(.*?)</th>', page)
    assert headings[-1] == "pipe_499 · transform · 200 executions · last 2023-11-16 07:29:59"  # 1,700,099,999 s, UTC+05:30
    assert '<tr class="failed"><td>stage_2</td><td class="num">200</td><td class="num">1</td>' in page
    assert 'class="num">200</td>' in rows[-1]


@given(pipes=st.integers(1, 12), stages=st.integers(1, 4), limit=st.integers(0, 30))
@settings(max_examples=30, deadline=None)
def test_the_monitor_page_shows_its_latest_stage_rows_for_any_shape(pipes, stages, limit):
    monitor = PipelineMonitor()
    monitor.html_rows = limit
    for i in range(pipes * 2):
        monitor.record(PipelineMetrics(f"p{i % pipes}", "fit", start_time=1e9 + i,
                                       stages=[StageRecord(f"s{j}", j, "fit", 1e9 + i, 0.01) for j in range(stages)]))
    page = monitor._repr_html_()
    total, shown = pipes * stages, min(pipes * stages, limit)
    assert len(_body_rows(page)) == shown
    assert (f"{total - shown:,} stage rows of earlier pipelines not shown" in page) == (total > shown)
    headings = re.findall(r'<th class="group" colspan="10">(p\d+) ·', page)
    groups = -(-shown // stages)  # the groups with a row shown: the most recently run, oldest first
    assert headings == [f"p{i}" for i in range(pipes - groups, pipes)]


# -- the store ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    """1,000 versions of a bare estimator, 60 alias changes over 20 aliases, and 120 names."""
    store = PipelinePersistence(tmp_path_factory.mktemp("big") / "store")
    model = DummyClassifier().fit([[0], [1]], [0, 1])
    for i in range(1000):
        store.save(model, "churn", metrics={"accuracy": i / 1000}, message=f"retrain <{i}>")
    for i in range(60):
        store.promote("churn", 1000 - i, f"alias_{i % 20}")
    pipe = make_pipeline(StandardScaler(), DummyClassifier()).fit([[0], [1]], [0, 1])
    for i in range(120):
        store.save(pipe, f"name_{i:03d}")
    return store


@pytest.mark.slow
def test_a_store_with_1000_versions_renders_a_small_page(big_store, monkeypatch):
    page = big_store.show("churn")._repr_html_()
    assert len(page.encode()) < 40_000
    assert page.count("<style>") == 1
    assert "950 earlier versions not shown" in page and "10 earlier alias changes not shown" in page
    assert len(_body_rows(page)) == 2 * StoreView.html_rows
    assert "retrain &lt;999&gt;" in page and "retrain &lt;949&gt;" not in page
    assert "<td>estimator (DummyClassifier)</td>" in page and "pipeline" not in page
    assert "<caption>churn: 1000 version(s)</caption>" in page
    names = big_store._repr_html_()
    assert len(names.encode()) < 20_000 and "71 more names not shown" in names
    assert "<td>pipeline</td>" in names


@pytest.mark.slow
def test_the_rich_view_of_a_large_store_is_bounded_too(big_store):
    console = Console(width=200, record=True, file=None)
    with console.capture() as captured:
        console.print(big_store.show("churn"))
    text = captured.get()
    assert "950 earlier versions not shown" in text and "estimator (DummyClassifier)" in text
    assert text.count("retrain <") == StoreView.html_rows


def test_every_store_view_shows_a_bare_estimator_as_an_estimator(tmp_path, local_tz):
    from ml_toolbox.cli import main

    store = PipelinePersistence(tmp_path / "s")
    store.save(DummyClassifier().fit([[0], [1]], [0, 1]), "bare")
    store.save(make_pipeline(StandardScaler(), DummyClassifier()).fit([[0], [1]], [0, 1]), "pipe")
    console = Console(width=200, record=True)
    with console.capture() as captured:
        console.print(store)
        console.print(store.show("bare"))
    text = captured.get()
    assert "estimator (DummyClassifier)" in text and "pipeline" in text
    page = store._repr_html_() + store.show("bare")._repr_html_()
    assert page.count("<td>estimator (DummyClassifier)</td>") == 2 and "<td>pipeline</td>" in page
    created = store.manifest("bare", 1)["created"]
    assert _html.local_time(created) in page and created not in page  # local, to the second
    for argv in (["list"], ["list", "bare"], ["show", "bare"]):
        out = Console(width=200, record=True)
        with out.capture() as captured:
            assert main(["--store", str(store.path), *argv], console=out) == 0
        assert "estimator (DummyClassifier)" in captured.get(), argv
