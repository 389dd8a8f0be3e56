"""How the pipelines show themselves: in a notebook (HTML) and in a terminal (rich).

Every pipeline and stage draws scikit-learn's diagram (what it is) and, under it, a table of what it
knows (how it ran): fitted or not, the number of features each stage takes and gives, the
training metrics, the plug-ins attached, and -- when a :class:`~ml_toolbox.PipelineMonitor` is
attached -- how long each stage took in the last run. The pipelines call :func:`pipeline_html`
from their ``_repr_html_`` (scikit-learn's ``_html_repr`` hook, so ``sklearn.set_config(
display="text")`` still turns the diagram off) and :func:`pipeline_rich` from ``__rich__``.

Both renderings are made from one :class:`PipelineView`, built by :func:`describe`; use it to
read the same facts as data.

Examples
--------
>>> import io
>>> import numpy as np
>>> from rich.console import Console
>>> from sklearn.preprocessing import StandardScaler
>>> from ml_toolbox import FeaturePipeline
>>> fp = FeaturePipeline([("scale", StandardScaler())]).fit(np.array([[1.0, 2.0], [3.0, 4.0]]))
>>> view = describe(fp)
>>> view.fitted, [(row.name, row.n_in, row.n_out) for row in view.rows]
(True, [('scale', 2, 2)])
>>> console = Console(file=io.StringIO(), width=100)
>>> console.print(fp)
>>> "FeaturePipeline 'feature_pipeline'" in console.file.getvalue()
True
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

__all__ = ["PipelineView", "StageRow", "describe", "render_rich", "render_html", "pipeline_rich",
           "pipeline_html", "format_seconds"]

_NO_MONITOR_HINT = "attach a PipelineMonitor to see where the time goes"


def format_seconds(seconds):
    """Format a duration for people: ``"850 µs"``, ``"12.3 ms"``, ``"4.56 s"``, ``"2 min 5 s"``.

    Parameters
    ----------
    seconds : float or None
        The duration; None is shown as a dash.

    Returns
    -------
    str
        Three significant digits below a minute, then minutes and seconds.

    Examples
    --------
    >>> format_seconds(0.00085), format_seconds(0.0123), format_seconds(4.561), format_seconds(125)
    ('850 µs', '12.3 ms', '4.56 s', '2 min 5 s')
    >>> format_seconds(None)
    '—'
    """
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes:.0f} min {rest:.0f} s"


@dataclass
class StageRow:
    """One stage as a display shows it (a row of :attr:`PipelineView.rows`).

    Parameters
    ----------
    index : int
        Position of the stage in its pipeline (0-based).
    name : str
        The stage's name.
    estimator : str
        Class name of what the stage wraps (the fitted one when fitted).
    fitted : bool
        Whether the stage is fitted.
    n_in : int or None, default=None
        Features the stage takes.
    n_out : int or None, default=None
        Features the stage gives (its ``get_feature_names_out`` count).
    timings : dict, default={}
        ``{column label: StageRecord-like}`` of the last runs a monitor recorded (``duration``,
        ``status``, ``attempts``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import FeaturePipeline
    >>> fp = FeaturePipeline([("scale", StandardScaler())], name="features").fit(np.ones((3, 2)))
    >>> describe(fp).rows
    [StageRow(index=0, name='scale', estimator='StandardScaler', fitted=True, n_in=2, n_out=2, timings={})]
    """

    index: int
    name: str
    estimator: str
    fitted: bool
    n_in: int | None = None
    n_out: int | None = None
    timings: dict = field(default_factory=dict)


@dataclass
class PipelineView:
    """What a display of a pipeline or a stage shows, as data.

    :func:`describe` builds it; :func:`render_rich` and :func:`render_html` draw it.

    Parameters
    ----------
    title : str
        ``"UnifiedMLPipeline 'churn'"``.
    fitted : bool
        Whether the pipeline (or stage) is fitted.
    rows : list of StageRow, default=[]
        One row per stage, in order.
    timing_columns : list of str, default=[]
        Labels of the timing columns (``"fit"``, ``"predict"``...), in order; empty when no
        monitor recorded anything.
    run_totals : dict, default={}
        ``{column label: seconds}``: the whole execution's duration per timing column.
    metrics : dict, default={}
        The training metrics (``metrics_``), when the pipeline has some.
    facts : list of (str, str), default=[]
        Other facts, e.g. ``("input", "30 features, 30 named columns")``, ``("plug-ins", "monitor")``.
    hint : str or None, default=None
        What the user can do to see more (e.g. attach a monitor).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import FeaturePipeline
    >>> fp = FeaturePipeline([("scale", StandardScaler())], name="features").fit(np.ones((3, 2)))
    >>> view = describe(fp)
    >>> view.title, view.fitted, view.facts
    ("FeaturePipeline 'features'", True, [('input', '2 features'), ('plug-ins', 'none')])
    >>> view.hint
    'attach a PipelineMonitor to see where the time goes'
    """

    title: str
    fitted: bool
    rows: list = field(default_factory=list)
    timing_columns: list = field(default_factory=list)
    run_totals: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    facts: list = field(default_factory=list)
    hint: str | None = None


# ---------------------------------------------------------------------------------------------
# building the view


def _is_fitted(obj):
    try:
        return bool(obj.__sklearn_is_fitted__())
    except Exception:  # a display never raises for a half-built object
        return False


def _n_out(stage):
    if not _is_fitted(stage) or not hasattr(stage, "get_feature_names_out"):
        return None
    try:
        return len(stage.get_feature_names_out())
    except Exception:  # estimators that cannot name their output without input names
        return None


def _stage_row(index, name, stage):
    from .stage import PipelineStage

    if isinstance(stage, PipelineStage):
        fitted = _is_fitted(stage)
        est = stage.__dict__.get("estimator_", stage.estimator)
        n_in = stage.__dict__.get("n_features_in_")
        n_out = _n_out(stage)
    else:  # a bare estimator (e.g. the model a UnifiedMLPipeline was given)
        est = stage
        fitted = False
        n_in = n_out = None
    if est is None or isinstance(est, str):
        label = "passthrough"
    elif hasattr(est, "fit"):
        label = type(est).__name__
    else:
        label = getattr(est, "__name__", type(est).__name__)
    return StageRow(index, name, label, fitted, n_in, n_out)


def _history(monitor, name):
    """The monitor's recorded executions of pipeline ``name`` (newest last), or []."""
    history = getattr(monitor, "history", None)
    if monitor is None or history is None:
        return []
    try:
        return list(history(name))
    except (KeyError, ValueError, TypeError):
        return []


def _record_timings(view, label, runs):
    """Put the stage records of ``runs`` (one execution per pipeline) under column ``label``."""
    by_name = {row.name: row for row in view.rows}
    total = 0.0
    seen = False
    for run in runs:
        for record in getattr(run, "stages", ()):
            row = by_name.get(getattr(record, "stage_name", None))
            if row is not None:
                row.timings[label] = record
                seen = True
        if getattr(run, "duration", None) is not None:
            total += run.duration
    if seen:
        view.timing_columns.append(label)
        view.run_totals[label] = total


def _plugins_of(*pipelines):
    found = []
    for pipe in pipelines:
        for slot, label in (("monitor", "monitor"), ("debugger", "debugger"),
                            ("retry_handler", "retry"), ("retry", "retry")):
            if getattr(pipe, slot, None) is not None and label not in found:
                found.append(label)
    return found


def _schema_fact(obj):
    schema = obj.__dict__.get("input_schema_")
    if schema is None:
        return None
    n = getattr(schema, "n_features", None)
    columns = getattr(schema, "columns", None)
    text = f"{n} features" if n is not None else "features"
    if columns is not None:
        text += " (DataFrame columns, checked at every call)"
    return ("input", text)


def _fast_fact(ip, parent=None):
    plan = ip.__dict__.get("fast_plan_")
    if plan is None or not getattr(ip, "has_model_", False):
        return None
    if not ip.fast:
        switch = "fast_inference" if parent is not None else "fast"
        return ("fast inference", f"off ({switch}=False)")
    try:
        applies = ip._fast_plan_for("predict", parent) is not None
    except Exception:
        applies = False
    if not applies:
        return ("fast inference", "not used: a stage has a timeout, or a retry policy covers a "
                                  "stage running your own code")
    try:
        report = plan.explain("predict")
    except Exception:
        return ("fast inference", "on")
    kernels = sum(1 for r in report if r.path == "kernel")
    text = f"on: {kernels} of {len(report)} stage(s) on numpy kernels"
    if kernels < len(report):
        text += ", the others through their own methods"
    if ip._plugins(parent):
        text += " (stage by stage, so the plug-ins see every stage)"
    return ("fast inference", text)


class _Batches:
    """Many executions (the batches of an epoch fit) read as one, stage by stage."""

    mode = "partial_fit"

    def __init__(self, duration, stages):
        self.duration, self.stages = duration, stages

    @classmethod
    def of(cls, runs):
        if not runs:
            return None
        merged = {}
        for run in runs:
            for record in getattr(run, "stages", ()):
                name = getattr(record, "stage_name", None)
                entry = merged.setdefault(name, _BatchRecord(name))
                entry.duration += getattr(record, "duration", 0.0) or 0.0
                entry.batches += 1
                if getattr(record, "status", "success") != "success":
                    entry.status = "failed"
                entry.attempts = max(entry.attempts, getattr(record, "attempts", 1) or 1)
        return cls(sum(getattr(r, "duration", 0.0) or 0.0 for r in runs), list(merged.values()))


class _BatchRecord:
    def __init__(self, stage_name):
        self.stage_name, self.duration, self.status = stage_name, 0.0, "success"
        self.attempts, self.batches = 1, 0


def _last(runs, mode_filter=None):
    runs = [r for r in runs if mode_filter is None or mode_filter(getattr(r, "mode", None))]
    return runs[-1] if runs else None


def _is_fit(mode):
    return mode in ("fit", "partial_fit")


def describe(obj):
    """Build the :class:`PipelineView` of a pipeline or a stage: what its displays show.

    Parameters
    ----------
    obj : PipelineStage, FeaturePipeline, TrainingPipeline, InferencePipeline or UnifiedMLPipeline
        What to describe, fitted or not.

    Returns
    -------
    PipelineView
        The title, stages, timings a monitor recorded, metrics and facts.

    Raises
    ------
    TypeError
        For an object that is none of those.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import FeaturePipeline
    >>> fp = FeaturePipeline([("scale", StandardScaler())], name="features").fit(np.ones((3, 2)))
    >>> [(row.name, row.estimator, row.n_in, row.n_out) for row in describe(fp).rows]
    [('scale', 'StandardScaler', 2, 2)]
    """
    from .base import BasePipeline
    from .feature import FeaturePipeline
    from .inference import InferencePipeline
    from .stage import PipelineStage
    from .training import MODEL_STAGE, TrainingPipeline
    from .unified import UnifiedMLPipeline

    if isinstance(obj, PipelineStage):
        view = PipelineView(f"PipelineStage {obj.stage_name!r}", _is_fitted(obj),
                            [_stage_row(0, obj.stage_name, obj)])
        if obj.retry is not None:
            view.facts.append(("retry", "off for this stage" if obj.retry is False
                               else type(obj.retry).__name__))
        if obj.timeout is not None:
            view.facts.append(("timeout", format_seconds(obj.timeout)))
        if obj.depends_on:
            view.facts.append(("depends on", ", ".join(map(str, obj.depends_on))))
        return view

    if isinstance(obj, UnifiedMLPipeline):
        return _describe_unified(obj, MODEL_STAGE)

    if not isinstance(obj, BasePipeline):
        raise TypeError(f"describe() takes a PipelineStage or an ml_toolbox pipeline, got "
                        f"{type(obj).__name__}: {obj!r}.")

    view = PipelineView(obj.owner, _is_fitted(obj))
    if isinstance(obj, TrainingPipeline):
        stage = obj.__dict__.get("stage_")
        if stage is None:
            try:
                stage = obj._template()
            except (TypeError, ValueError):
                stage = None
        if stage is not None:
            view.rows.append(_stage_row(0, MODEL_STAGE, stage))
        view.metrics = dict(obj.__dict__.get("metrics_", {}))
    elif isinstance(obj, (FeaturePipeline, InferencePipeline)):
        if "stages_" in obj.__dict__:
            names, stages = obj.stage_names_, obj.stages_
        elif isinstance(obj, FeaturePipeline):
            try:
                names, stages = obj._templates()
            except (TypeError, ValueError):
                names, stages = [], []
        else:
            names, stages = [], []
        view.rows = [_stage_row(i, n, s) for i, (n, s) in enumerate(zip(names, stages))]
    fact = _schema_fact(obj)
    if fact:
        view.facts.append(fact)
    if isinstance(obj, InferencePipeline):
        fact = _fast_fact(obj)
        if fact:
            view.facts.append(fact)
    plugins = _plugins_of(obj)
    view.facts.append(("plug-ins", ", ".join(plugins) if plugins else "none"))
    last = _last(_history(obj.monitor, obj.name))
    if last is not None:
        _record_timings(view, f"last {last.mode}", [last])
    elif obj.monitor is None:
        view.hint = _NO_MONITOR_HINT
    return view


def _describe_unified(obj, model_stage):
    fp, tp, ip = obj.feature_pipeline, obj.training_pipeline, obj.inference_pipeline
    fitted = _is_fitted(obj)
    view = PipelineView(obj.owner, fitted)
    if "stages_" in fp.__dict__ and fitted:
        names, stages = fp.stage_names_, fp.stages_
    else:
        try:
            names, stages = fp._templates()
        except (TypeError, ValueError):
            names, stages = [], []
    view.rows = [_stage_row(i, n, s) for i, (n, s) in enumerate(zip(names, stages))]
    model = tp.__dict__.get("stage_") if fitted else None
    if model is None and obj.model is not None and not isinstance(obj.model, str):
        model = obj.model
    if model is not None:
        view.rows.append(_stage_row(len(view.rows), model_stage, model))
    elif obj.model is None and not fitted:
        view.rows.append(StageRow(len(view.rows), model_stage, "chosen at fit by the toolbox",
                                  False))
    view.metrics = dict(obj.__dict__.get("metrics_", {}))
    task = obj.__dict__.get("task_") if fitted and obj.model is None else None
    if task is not None:  # the toolbox chose the model: say which kind, and why
        view.facts.append(("task", f"{task} ({obj.__dict__.get('task_reason_')})"))
    fact = _schema_fact(obj)
    if fact:
        view.facts.append(fact)
    if fitted:
        fact = _fast_fact(ip, obj)
        if fact:
            view.facts.append(fact)
    plugins = _plugins_of(obj, fp, tp, ip)
    view.facts.append(("plug-ins", ", ".join(plugins) if plugins else "none"))
    monitors = {id(m): m for m in (fp.monitor or obj.monitor, tp.monitor or obj.monitor,
                                   ip.monitor or obj.monitor) if m is not None}
    if not monitors:
        view.hint = _NO_MONITOR_HINT
        return view
    feature_fit = _last(_history(fp.monitor or obj.monitor, fp.name), _is_fit)
    model_runs = _history(tp.monitor or obj.monitor, tp.name)
    model_fit = _last(model_runs, _is_fit)
    if model_fit is not None and model_fit.mode == "partial_fit" and feature_fit is not None:
        # epoch training: one execution per batch; the fit is every batch since the features'
        batches = [r for r in model_runs if r.mode == "partial_fit"
                   and getattr(r, "start_time", 0) >= getattr(feature_fit, "start_time", 0)]
        model_fit = _Batches.of(batches) or model_fit
    fit_runs = [r for r in (feature_fit, model_fit) if r is not None]
    if fit_runs:
        _record_timings(view, "last fit", fit_runs)
    served = _last(_history(ip.monitor or obj.monitor, ip.name))
    if served is not None:
        _record_timings(view, f"last {served.mode}", [served])
    return view


# ---------------------------------------------------------------------------------------------
# rendering


def _count(value):
    return "—" if value is None else str(value)


def _timing_text(record):
    text = format_seconds(getattr(record, "duration", None))
    batches = getattr(record, "batches", None)
    if batches and batches > 1:
        text += f" ({batches} batches)"
    attempts = getattr(record, "attempts", 1) or 1
    if attempts > 1:
        text += f" ({attempts} attempts)"
    if getattr(record, "status", "success") != "success":
        text += " failed"
    return text


def _format_metric(value):
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def _status(view):
    return "fitted" if view.fitted else "not fitted"


def render_rich(view):
    """Render a :class:`PipelineView` for the terminal, with rich.

    Parameters
    ----------
    view : PipelineView
        What to draw.

    Returns
    -------
    rich.panel.Panel
        A panel holding the stage table, the metrics and the facts.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import FeaturePipeline
    >>> fp = FeaturePipeline([("scale", StandardScaler())], name="features").fit(np.ones((3, 2)))
    >>> type(render_rich(describe(fp))).__name__
    'Panel'
    """
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    # names are what the reader scans for: on a narrow terminal the headers wrap, names do not
    widest = lambda values: min(max([len(v) for v in values] + [5]), 40)  # noqa: E731
    table.add_column("stage", no_wrap=True, min_width=widest([r.name for r in view.rows]))
    table.add_column("estimator", no_wrap=True,
                     min_width=widest([r.estimator for r in view.rows]))
    table.add_column("fitted")
    table.add_column("features in", justify="right", min_width=8)
    table.add_column("features out", justify="right", min_width=8)
    for label in view.timing_columns:
        table.add_column(label, justify="right", min_width=7)
    for row in view.rows:
        cells = [Text(row.name, style="bold"), Text(row.estimator),
                 Text("yes", style="green") if row.fitted else Text("no", style="yellow"),
                 _count(row.n_in), _count(row.n_out)]
        for label in view.timing_columns:
            record = row.timings.get(label)
            style = "red" if record is not None and getattr(record, "status", "success") \
                != "success" else ""
            cells.append(Text(_timing_text(record) if record is not None else "—", style=style))
        table.add_row(*cells)
    if view.timing_columns:
        table.add_row(Text("total", style="dim"), "", "", "", "",
                      *[Text(format_seconds(view.run_totals.get(label)), style="dim")
                        for label in view.timing_columns])
    parts = [table]
    if view.metrics:
        metrics = Text("metrics: ", style="bold")
        metrics.append(",  ".join(f"{k} = {_format_metric(v)}" for k, v in view.metrics.items()))
        parts.append(metrics)
    for key, value in view.facts:
        line = Text(f"{key}: ", style="bold")
        line.append(value)
        parts.append(line)
    if view.hint:
        parts.append(Text(view.hint, style="dim italic"))
    title = Text(view.title, style="bold")
    title.append(f" · {_status(view)}", style="green" if view.fitted else "yellow")
    return Panel(Group(*parts), title=title, title_align="left", expand=False)


def pipeline_rich(obj):
    """Render a pipeline or stage for the terminal (what its ``__rich__`` returns).

    Parameters
    ----------
    obj : PipelineStage or pipeline
        Anything :func:`describe` takes.

    Returns
    -------
    rich.panel.Panel
        ``render_rich(describe(obj))``.

    Examples
    --------
    >>> import io
    >>> from rich.console import Console
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import FeaturePipeline
    >>> fp = FeaturePipeline([("scale", StandardScaler())], name="features").fit(np.ones((3, 2)))
    >>> console = Console(file=io.StringIO(), width=80)
    >>> console.print(pipeline_rich(fp))
    >>> print(console.file.getvalue().splitlines()[0])
    ╭─ FeaturePipeline 'features' · fitted ────────────────────╮
    """
    return render_rich(describe(obj))


_CSS = ("<style>.mlt-state{font-family:var(--jp-code-font-family,monospace);font-size:12px;"
        "margin:4px 0 8px 0}.mlt-state table{border-collapse:collapse}"
        ".mlt-state th,.mlt-state td{padding:2px 10px;text-align:left;"
        "border-bottom:1px solid rgba(128,128,128,.3)}.mlt-state td.num{text-align:right}"
        ".mlt-state .fitted{color:#2e7d32}.mlt-state .unfitted{color:#b26a00}"
        ".mlt-state .failed{color:#c62828}.mlt-state .hint{opacity:.7;font-style:italic}"
        "</style>")


def render_html(view):
    """Render a :class:`PipelineView` as an HTML table, with its own CSS.

    Parameters
    ----------
    view : PipelineView
        What to draw.

    Returns
    -------
    str
        A ``<style>`` block and a ``<div class="mlt-state">`` holding the table.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import FeaturePipeline
    >>> fp = FeaturePipeline([("scale", StandardScaler())], name="features").fit(np.ones((3, 2)))
    >>> html = render_html(describe(fp))
    >>> html.startswith("<style>"), '<div class="mlt-state">' in html
    (True, True)
    """
    e = html.escape
    status_class = "fitted" if view.fitted else "unfitted"
    out = [_CSS, '<div class="mlt-state">',
           f'<div><strong>{e(view.title)}</strong> · <span class="{status_class}">'
           f"{_status(view)}</span></div>", "<table><thead><tr>"]
    headers = ["stage", "estimator", "fitted", "features in", "features out",
               *view.timing_columns]
    out.append("".join(f"<th>{e(h)}</th>" for h in headers))
    out.append("</tr></thead><tbody>")
    for row in view.rows:
        fitted = ('<span class="fitted">yes</span>' if row.fitted
                  else '<span class="unfitted">no</span>')
        cells = [f"<td><b>{e(row.name)}</b></td>",
                 f"<td>{e(row.estimator)}</td>", f"<td>{fitted}</td>",
                 f'<td class="num">{_count(row.n_in)}</td>',
                 f'<td class="num">{_count(row.n_out)}</td>']
        for label in view.timing_columns:
            record = row.timings.get(label)
            if record is None:
                cells.append('<td class="num">—</td>')
                continue
            failed = getattr(record, "status", "success") != "success"
            css = "num failed" if failed else "num"
            cells.append(f'<td class="{css}">{e(_timing_text(record))}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    if view.timing_columns:
        totals = "".join(f'<td class="num">{e(format_seconds(view.run_totals.get(label)))}</td>'
                         for label in view.timing_columns)
        out.append(f'<tr><td class="hint">total</td><td></td><td></td><td></td><td></td>'
                   f"{totals}</tr>")
    out.append("</tbody></table>")
    if view.metrics:
        items = ", ".join(f"{e(str(k))} = {e(_format_metric(v))}" for k, v in view.metrics.items())
        out.append(f"<div><b>metrics:</b> {items}</div>")
    for key, value in view.facts:
        out.append(f"<div><b>{e(key)}:</b> {e(value)}</div>")
    if view.hint:
        out.append(f'<div class="hint">{e(view.hint)}</div>')
    out.append("</div>")
    return "".join(out)


def pipeline_html(obj):
    """Render scikit-learn's diagram of ``obj`` followed by its state table.

    What the notebook shows (the object's ``_repr_html_``).

    Parameters
    ----------
    obj : PipelineStage or pipeline
        Anything :func:`describe` takes.

    Returns
    -------
    str
        The HTML of :func:`sklearn.utils.estimator_html_repr`, then :func:`render_html`'s.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import FeaturePipeline
    >>> fp = FeaturePipeline([("scale", StandardScaler())], name="features").fit(np.ones((3, 2)))
    >>> html = pipeline_html(fp)
    >>> "sk-top-container" in html, '<div class="mlt-state">' in html
    (True, True)
    """
    from sklearn.utils import estimator_html_repr

    return estimator_html_repr(obj) + render_html(describe(obj))
