"""What runs look like to a person: tables (rich in a terminal, HTML in a notebook), comparisons,
reports and plots. The CLI (``ml-toolbox runs``) prints these same objects; each also has
``to_dict()`` for ``--json``.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math

import numpy as np
from rich.table import Table

__all__ = ["RunTable", "RunComparison", "RunReport", "runs_table", "run_table", "to_html",
           "plot_metric", "fmt"]


def fmt(value):
    """Return a run table cell's text: ``-`` for None, 6 significant digits, JSON for containers.

    Parameters
    ----------
    value : object
        The cell's value (booleans as ``True`` / ``False``, NaN as ``nan``).

    Returns
    -------
    str
        Its text.

    Examples
    --------
    >>> fmt(None), fmt(2 / 3), fmt(float("nan")), fmt({"C": 1.0})
    ('-', '0.666667', 'nan', '{"C": 1.0}')
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=repr)
    return str(value)


def when(seconds):
    """``2026-12-03 13:15:02`` (UTC) of a wall-clock time."""
    if seconds is None:
        return "-"
    return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def took(seconds):
    if seconds is None:
        return "-"
    if seconds >= 100:
        return f"{seconds:.0f}s"
    if seconds >= 1:
        return f"{seconds:.2f}s"
    return f"{seconds * 1e3:.3g}ms"


class RunTable:
    """Rows with a title: drawn by rich (``__rich__``) and in a notebook (``_repr_html_``).

    Parameters
    ----------
    title : str
        The table's title.
    columns : sequence of str
        The column headers.
    rows : iterable of sequence
        The rows; values that are not strings are formatted with :func:`fmt`.
    marked : iterable of tuple, default=()
        ``(row, column)`` cells to highlight (differences, in a comparison).
    data : dict, optional
        What :meth:`to_dict` returns (default: the title and the rows as dicts).

    Examples
    --------
    >>> table = RunTable("runs", ["id", "score"], [["a1b2", 0.91]])
    >>> table.to_dict()
    {'title': 'runs', 'rows': [{'id': 'a1b2', 'score': '0.91'}]}
    """

    def __init__(self, title, columns, rows, *, marked=(), data=None):
        self.title = title
        self.columns = list(columns)
        self.rows = [[fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
        self.marked = set(marked)
        self.data = data

    def to_dict(self):
        """Return the table as plain JSON-ready values (what ``--json`` prints).

        Returns
        -------
        dict
            ``data`` when given, else ``title`` and ``rows`` (one dict per row).
        """
        return self.data if self.data is not None else {
            "title": self.title, "rows": [dict(zip(self.columns, r)) for r in self.rows]}

    def __rich__(self):
        table = Table(title=self.title)
        for column in self.columns:
            table.add_column(column, overflow="fold")
        for i, row in enumerate(self.rows):
            table.add_row(*[f"[bold yellow]{_escape(c)}[/]" if (i, j) in self.marked
                            else _escape(c) for j, c in enumerate(row)])
        return table

    def _repr_html_(self):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = []
        for i, row in enumerate(self.rows):
            cells = []
            for j, c in enumerate(row):
                style = ' style="background:#fff3b0;font-weight:bold"' if (i, j) in self.marked \
                    else ""
                cells.append(f"<td{style}>{html.escape(c)}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        return (f"<table><caption>{html.escape(self.title)}</caption><thead><tr>{head}</tr>"
                f"</thead><tbody>{''.join(body)}</tbody></table>")

    def __len__(self):
        return len(self.rows)


def _escape(text):
    from rich.markup import escape

    return escape(text)


def to_html(renderable):
    """Return the HTML of a run table (or of anything rich draws, through rich's HTML export).

    Parameters
    ----------
    renderable : RunTable or rich renderable
        What to draw.

    Returns
    -------
    str
        The HTML, with its own CSS.

    Examples
    --------
    >>> "<table" in to_html(RunTable("runs", ["id"], [["a1b2"]]))
    True
    """
    if hasattr(renderable, "_repr_html_"):
        return renderable._repr_html_()
    from rich.console import Console

    console = Console(record=True, file=open("/dev/null", "w"), width=120)
    console.print(renderable)
    return console.export_html(inline_styles=True)


LIST_COLUMNS = ("id", "name", "kind", "status", "start", "duration", "progress", "metrics",
                "versions", "tags")


def _list_row(r, metrics=3):
    shown = ", ".join(f"{k}={fmt(v)}" for k, v in list(sorted(r.metrics.items()))[:metrics])
    versions = ", ".join(f"{v['name']} v{v['version']}" for v in r.versions)
    progress = "-" if r.progress is None else f"{r.progress:.0%}"
    if r.progress_text and r.status == "running":
        progress = f"{progress} ({r.progress_text})"
    return [r.id[:12], r.name, r.kind or "-", r.status + (" (archived)" if r.archived else ""),
            when(r.start), took(r.duration), progress, shown or "-", versions or "-",
            ", ".join(f"{k}={v}" for k, v in sorted(r.tags.items())) or "-"]


def runs_table(runs, title="runs"):
    """Return a :class:`RunTable` of runs, one row each.

    Parameters
    ----------
    runs : list of RunRecord
        The runs.
    title : str, default="runs"
        The table's title.

    Returns
    -------
    RunTable
        Id, name, kind, status, start, duration and the first metrics of each run.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox.runs import RunStore, track
    >>> store, model = RunStore(tempfile.mkdtemp()), LogisticRegression()
    >>> with track(model, "fit", trackers=[store]) as run:
    ...     _ = model.fit([[0.0], [1.0]], [0, 1])
    >>> runs_table(store.runs(), "my runs").title
    'my runs'
    """
    return RunTable(title, LIST_COLUMNS, [_list_row(r) for r in runs],
                    data=[r.to_dict() for r in runs])


def run_table(r, stages=None, metric_history=None):
    """Return a :class:`RunTable` of one run: every field, parameters, metrics, stages and lineage.

    Parameters
    ----------
    r : RunRecord
        The run.
    stages : list of dict, optional
        Its stage runs (as :meth:`RunStore.stages` returns them).
    metric_history : dict, optional
        ``{metric: [(step, value), ...]}`` of its metrics.

    Returns
    -------
    RunTable
        One row per field.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox.runs import RunStore, track
    >>> store, model = RunStore(tempfile.mkdtemp()), LogisticRegression()
    >>> with track(model, "fit", trackers=[store]) as run:
    ...     _ = model.fit([[0.0], [1.0]], [0, 1])
    >>> table = run_table(store.get(run.id))
    >>> table.columns
    ['field', 'value']
    """
    rows = [["id", r.id], ["name", r.name], ["kind", fmt(r.kind)], ["status", r.status],
            ["archived", "yes" if r.archived else "no"], ["start", when(r.start)],
            ["end", when(r.end)], ["duration", took(r.duration)],
            ["progress", "-" if r.progress is None else f"{r.progress:.0%}"],
            ["error", fmt(r.error)], ["error stage", fmt(r.error_stage)],
            ["cpu time", took(r.cpu_time)],
            ["peak memory", "-" if r.peak_memory is None else f"{r.peak_memory / 2**20:.1f} MiB"],
            ["host / pid", f"{r.host} / {r.pid}"], ["parent run", fmt(r.parent_id)]]
    for section in ("metrics", "params", "data", "tags", "environment", "tracker_errors"):
        for key, value in sorted((getattr(r, section) or {}).items()):
            rows.append([f"{section}.{key}", fmt(value)])
    for v in r.versions:
        rows.append(["version", f"{v['name']} v{v['version']} in {v['store']}"])
    for n in r.notes:
        rows.append(["note", f"{when(n['time'])}: {n['text']}"])
    for s in stages or ():
        rows.append([f"stage {s['pipeline']}.{s['stage']} ({s['mode']})",
                     f"{took(s['duration'])}, {fmt(s['rows_in'])} rows, {s['status']}"])
    for key, points in (metric_history or {}).items():
        steps = [f"{fmt(v)}" for step, v in points if step is not None]
        if steps:
            rows.append([f"per epoch: {key}", " ".join(steps)])
    data = r.to_dict()
    if stages is not None:
        data["stages"] = stages
    if metric_history is not None:
        data["metric_history"] = {k: [list(p) for p in v] for k, v in metric_history.items()}
    return RunTable(f"run {r.id[:12]} of {r.name!r}", ("field", "value"), rows, data=data)


class RunComparison(RunTable):
    """Parameters and metrics of several runs side by side; cells that differ are highlighted.

    Made by :meth:`RunStore.compare`.

    Parameters
    ----------
    runs : list of RunRecord
        The runs, one column each.
    only_differences : bool, default=False
        Show only the rows whose values differ.

    Attributes
    ----------
    differences : list of str
        The parameter and metric names whose values differ between the runs.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox.runs import RunStore, track
    >>> store = RunStore(tempfile.mkdtemp())
    >>> ids = []
    >>> for C in (0.1, 1.0):
    ...     model = LogisticRegression(C=C)
    ...     with track(model, "fit", trackers=[store]) as run:
    ...         _ = model.fit([[0.0], [1.0]], [0, 1])
    ...     ids.append(run.id)
    >>> comparison = store.compare(*ids)
    >>> comparison.differences
    ['params.C']
    """

    def __init__(self, runs, only_differences=False):
        self.runs = list(runs)
        rows, marked, diffs = [], set(), []
        header = [["status", *[r.status for r in runs]], ["kind", *[fmt(r.kind) for r in runs]],
                  ["start", *[when(r.start) for r in runs]],
                  ["duration", *[took(r.duration) for r in runs]],
                  ["data.hash", *[fmt(r.data.get("hash")) for r in runs]]]
        rows.extend(header)
        for section in ("params", "metrics"):
            keys = sorted({k for r in runs for k in getattr(r, section)})
            for key in keys:
                values = [getattr(r, section).get(key) for r in runs]
                cells = [fmt(v) for v in values]
                if len(set(cells)) > 1:
                    diffs.append(f"{section}.{key}")
                    marked.update((len(rows), j + 1) for j in range(len(runs)))
                elif only_differences:
                    continue
                rows.append([f"{section}.{key}", *cells])
        self.differences = diffs
        super().__init__("comparison of runs " + ", ".join(r.id[:12] for r in runs),
                         ["field", *[r.id[:12] for r in runs]], rows, marked=marked)

    def to_dict(self):
        """Return the comparison as plain JSON-ready values.

        Returns
        -------
        dict
            ``runs`` (each run's :meth:`RunRecord.to_dict`) and ``differences``.
        """
        return {"runs": [r.to_dict() for r in self.runs], "differences": self.differences}


class RunReport(RunTable):
    """Per stage over the last days: P50 / P95 / P99 duration, success rate, throughput, trend.

    The trend is the ratio of the median duration in the second half of the window's runs to
    that of the first half (above 1: slower lately). Made by :meth:`RunStore.report`.

    Parameters
    ----------
    name : str
        The pipeline's name.
    days : float
        The window, in days.
    runs : list of RunRecord
        The runs of the window.
    stage_runs : list of dict
        Their stage runs (as :meth:`RunStore.stages` returns them).

    Attributes
    ----------
    n_runs : int
        The number of runs.
    success_rate : float or None
        The share of runs that succeeded.
    stages : list of dict
        One per stage and mode: durations, success rate, throughput, trend.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox.runs import RunStore, track
    >>> store = RunStore(tempfile.mkdtemp())
    >>> ids = []
    >>> for C in (0.1, 1.0):
    ...     model = LogisticRegression(C=C)
    ...     with track(model, "fit", trackers=[store]) as run:
    ...         _ = model.fit([[0.0], [1.0]], [0, 1])
    ...     ids.append(run.id)
    >>> report = store.report("LogisticRegression", days=1)
    >>> report.n_runs, report.success_rate
    (2, 1.0)
    """

    COLUMNS = ("pipeline", "stage", "mode", "runs", "success", "p50", "p95", "p99",
               "rows/s", "trend")

    def __init__(self, name, days, runs, stage_runs):
        self.name = name
        self.days = days
        self.n_runs = len(runs)
        finished = [r for r in runs if r.status != "running"]
        self.success_rate = (sum(r.status == "success" for r in finished) / len(finished)
                             if finished else None)
        self.stages = []
        for (pipeline, stage, mode), items in sorted(stage_runs.items()):
            items.sort(key=lambda t: t[0] or 0)
            ok = [t for t in items if t[2] == "success"]
            durations = np.array([t[1] for t in ok], dtype=float)
            entry = {"pipeline": pipeline, "stage": stage, "mode": mode, "runs": len(items),
                     "success_rate": len(ok) / len(items) if items else None,
                     "p50": None, "p95": None, "p99": None, "throughput": None, "trend": None}
            if len(durations):
                entry["p50"], entry["p95"], entry["p99"] = (
                    float(v) for v in np.percentile(durations, [50, 95, 99]))
                rows = sum(t[3] or 0 for t in ok)
                total = float(durations.sum())
                entry["throughput"] = rows / total if total > 0 and rows else None
                if len(durations) >= 4:
                    half = len(durations) // 2
                    first = float(np.median(durations[:half]))
                    entry["trend"] = float(np.median(durations[half:])) / first if first else None
            self.stages.append(entry)
        rows = [[e["pipeline"], e["stage"], e["mode"], str(e["runs"]),
                 f"{e['success_rate']:.0%}" if e["success_rate"] is not None else "-",
                 took(e["p50"]), took(e["p95"]), took(e["p99"]),
                 fmt(None if e["throughput"] is None else round(e["throughput"])),
                 "-" if e["trend"] is None else f"x{e['trend']:.2f}"] for e in self.stages]
        rate = "-" if self.success_rate is None else f"{self.success_rate:.0%}"
        super().__init__(f"{name}: {self.n_runs} runs in the last {days:g} days, "
                         f"success rate {rate}", self.COLUMNS, rows)

    def to_dict(self):
        """Return the report as plain JSON-ready values.

        Returns
        -------
        dict
            ``name``, ``days``, ``runs`` (their number), ``success_rate`` and ``stages``.
        """
        return {"name": self.name, "days": self.days, "runs": self.n_runs,
                "success_rate": self.success_rate, "stages": self.stages}


def plot_metric(store, metric, runs=None, *, name=None, ax=None):
    """Draw a metric by step for several runs (see :meth:`RunStore.plot`).

    Parameters
    ----------
    store : RunStore
        The run store.
    metric : str
        The metric's name.
    runs : list of str, optional
        Run ids (default: the last 10 runs of ``name``, or of the store, with the metric).
    name : str, optional
        The pipeline whose runs are drawn by default.
    ax : matplotlib Axes, optional
        Draw on it instead of a new figure.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox.runs import RunStore, track
    >>> store, model = RunStore(tempfile.mkdtemp()), LogisticRegression()
    >>> with track(model, "fit", trackers=[store]) as run:
    ...     _ = model.fit([[0.0], [1.0]], [0, 1])
    ...     run.log_metrics({"loss": 0.5}, step=1)
    ...     run.log_metrics({"loss": 0.2}, step=2)
    >>> ax = plot_metric(store, "loss")
    >>> len(ax.lines)
    1
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plot() needs matplotlib: pip install 'ml_toolbox[plot]'") from exc
    from ml_toolbox.runs.store import RunNotFoundError

    if runs is None:
        candidates = store.runs(name, limit=50)
        runs = [r.id for r in candidates if metric in store.metric_names(r.id)][:10]
        if not runs:
            raise RunNotFoundError(f"No run has the metric {metric!r}. Metrics recorded: "
                                   f"{store.metric_names() or 'none'}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for run_id in runs:
        points = store.metric_history(run_id, metric)
        steps = [(s, v) for s, v in points if s is not None]
        record = store.get(run_id)
        label = f"{record.id[:8]} {record.name}"
        if steps:
            ax.plot([s for s, _ in steps], [v for _, v in steps], marker="o", label=label)
        else:  # a final value only: one point per run, at x = its position
            ax.scatter([runs.index(run_id)], [points[-1][1]], label=label)
    ax.set_xlabel("step (epoch)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} across runs")
    ax.legend(fontsize="small")
    return ax
