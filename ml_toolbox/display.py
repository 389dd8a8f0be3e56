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

from ._describe import format_seconds, register_renderers

__all__ = ["PipelineView", "StageRow", "describe", "render_rich", "render_html", "pipeline_rich",
           "pipeline_html", "format_seconds"]

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
# building the view: from the object's own description (its ``_describe_()``, see
# ml_toolbox._describe); this module knows no pipeline class.


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


def describe(obj):
    """Build the :class:`PipelineView` of a pipeline or a stage: what its displays show.

    Parameters
    ----------
    obj : object
        A pipeline or a stage of ml_toolbox: any object whose ``_describe_()`` method returns a
        plain description (see :mod:`ml_toolbox._describe`).

    Returns
    -------
    PipelineView
        The description, as data.

    Raises
    ------
    TypeError
        For an object that does not describe itself.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import FeaturePipeline
    >>> fp = FeaturePipeline([("scale", StandardScaler())], name="features").fit(np.ones((3, 2)))
    >>> [(row.name, row.estimator, row.n_in, row.n_out) for row in describe(fp).rows]
    [('scale', 'StandardScaler', 2, 2)]
    """
    own = getattr(obj, "_describe_", None)
    if own is None or isinstance(obj, type):
        raise TypeError(f"describe() takes a PipelineStage or an ml_toolbox pipeline, got "
                        f"{type(obj).__name__}: {obj!r}.")
    plain = own()
    view = PipelineView(plain["title"], plain["fitted"],
                        [StageRow(i, **row) for i, row in enumerate(plain["rows"])],
                        metrics=dict(plain["metrics"]), facts=list(plain["facts"]),
                        hint=plain["hint"])
    for label, runs in plain["timings"]:
        _record_timings(view, label, runs)
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


register_renderers(html=pipeline_html, rich=pipeline_rich)
