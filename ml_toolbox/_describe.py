"""How pipelines and stages describe themselves to the displays, and how they reach the renderers.

Objects describe themselves; the renderers draw the description (scikit-learn's
``_sk_visual_block_`` is the model). Each pipeline and stage has a ``_describe_()`` method
returning a plain description: a dict ::

    {"title": str, "fitted": bool,
     "rows": [{"name", "estimator", "fitted", "n_in", "n_out"}, ...],   # one per stage
     "metrics": {name: value}, "facts": [(key, text), ...],
     "timings": [(column label, [recorded runs]), ...], "hint": str or None}

and :mod:`ml_toolbox.display` turns it into a :class:`~ml_toolbox.display.PipelineView` and
draws it (HTML, rich) without knowing any pipeline class. This module is the meeting point: it
imports neither side. The objects' ``_html_repr`` / ``__rich__`` (:class:`HTMLReprMixin`) call the
renderers :mod:`ml_toolbox.display` registers with :func:`register_renderers` when it is imported
(``import ml_toolbox`` imports it).
"""

from __future__ import annotations

__all__ = ["HTMLReprMixin", "register_renderers", "description", "estimator_row", "stage_row",
           "is_fitted", "schema_fact", "plugins_fact", "monitor_history", "last_run", "is_fit",
           "Batches", "format_seconds", "NO_MONITOR_HINT"]

NO_MONITOR_HINT = "attach a PipelineMonitor to see where the time goes"

_RENDERERS: dict = {}


def register_renderers(*, html, rich):
    """Make ``html(obj)`` and ``rich(obj)`` the renderers of every pipeline's displays."""
    _RENDERERS["html"], _RENDERERS["rich"] = html, rich


def _render(kind, obj):
    renderer = _RENDERERS.get(kind)
    if renderer is None:  # (the package's __init__ imports ml_toolbox.display, which registers)
        raise RuntimeError("no display renderer is registered: import ml_toolbox.display.")
    return renderer(obj)


class HTMLReprMixin:
    """The displays of a describable object: the notebook's HTML and rich's ``__rich__``.

    ``_html_repr()`` is shown with every supported scikit-learn: 1.7 and later call that hook
    themselves; 1.6 calls it from ``_repr_html_inner`` / ``_repr_mimebundle_``.

    Examples
    --------
    >>> from ml_toolbox import PipelineStage
    >>> from ml_toolbox.stage import HTMLReprMixin
    >>> issubclass(PipelineStage, HTMLReprMixin), "<div" in PipelineStage()._repr_html_()
    (True, True)
    """

    def _html_repr(self):
        """The notebook display: scikit-learn's diagram, then fitted state and last-run timings."""
        return _render("html", self)

    def __rich__(self):
        """The terminal display (rich): fitted state, features, metrics and last-run timings."""
        return _render("rich", self)

    def _repr_html_inner(self):
        return self._html_repr()

    def _repr_mimebundle_(self, **kwargs):
        from sklearn import get_config  # (keeps `import ml_toolbox`, which imports this, light)

        output = {"text/plain": repr(self)}
        if get_config()["display"] == "diagram":
            output["text/html"] = self._html_repr()
        return output


def format_seconds(seconds):
    """A duration for people: ``"850 µs"``, ``"12.3 ms"``, ``"4.56 s"``, ``"2 min 5 s"``.

    Parameters
    ----------
    seconds : float or None
        The duration; None reads as unknown.

    Returns
    -------
    str
        The duration with a unit, or ``"—"`` for None.

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


def description(title, fitted, rows=(), *, metrics=None, facts=(), timings=(), hint=None):
    """A plain description (the dict the module docstring shows)."""
    return {"title": title, "fitted": bool(fitted), "rows": list(rows),
            "metrics": dict(metrics or {}), "facts": list(facts), "timings": list(timings),
            "hint": hint}


def is_fitted(obj):
    """``obj.__sklearn_is_fitted__()``, False when it cannot say (a display never raises)."""
    try:
        return bool(obj.__sklearn_is_fitted__())
    except Exception:  # noqa: BLE001 - a half-built object still displays
        return False


def estimator_label(est):
    """The class name a row shows for ``est`` ("passthrough" for None or a string)."""
    if est is None or isinstance(est, str):
        return "passthrough"
    if hasattr(est, "fit"):
        return type(est).__name__
    return getattr(est, "__name__", type(est).__name__)


def estimator_row(name, est, fitted=False, n_in=None, n_out=None):
    """The row of a stage named ``name`` showing ``est``."""
    return {"name": name, "estimator": estimator_label(est), "fitted": fitted, "n_in": n_in,
            "n_out": n_out}


def stage_row(name, stage):
    """The row of ``stage``: its own ``_describe_row_``, or that of a bare estimator (e.g. the
    model a UnifiedMLPipeline was given, or a step of a Pipeline)."""
    own = getattr(stage, "_describe_row_", None)
    if own is not None:
        return own(name)
    return estimator_row(name, stage)


def schema_fact(obj):
    """The ``("input", ...)`` fact of an object with a fit-time input schema, or None."""
    schema = obj.__dict__.get("input_schema_")
    if schema is None:
        return None
    n = getattr(schema, "n_features", None)
    text = f"{n} features" if n is not None else "features"
    if getattr(schema, "columns", None) is not None:
        text += " (DataFrame columns, checked at every call)"
    return ("input", text)


def plugins_fact(*pipelines):
    """The ``("plug-ins", ...)`` fact: which plug-ins ``pipelines`` have attached."""
    found = []
    for pipe in pipelines:
        for slot, label in (("monitor", "monitor"), ("debugger", "debugger"),
                            ("retry_handler", "retry"), ("retry", "retry")):
            if getattr(pipe, slot, None) is not None and label not in found:
                found.append(label)
    return ("plug-ins", ", ".join(found) if found else "none")


def monitor_history(monitor, name):
    """The monitor's recorded executions of pipeline ``name`` (newest last), or []."""
    history = getattr(monitor, "history", None)
    if monitor is None or history is None:
        return []
    try:
        return list(history(name))
    except (KeyError, ValueError, TypeError):
        return []


def last_run(runs, mode_filter=None):
    """The newest of ``runs`` whose mode passes ``mode_filter``, or None."""
    runs = [r for r in runs if mode_filter is None or mode_filter(getattr(r, "mode", None))]
    return runs[-1] if runs else None


def is_fit(mode):
    """Whether an execution of ``mode`` fitted something."""
    return mode in ("fit", "partial_fit")


class Batches:
    """Many executions (the batches of an epoch fit) read as one, stage by stage."""

    mode = "partial_fit"

    def __init__(self, duration, stages):
        self.duration, self.stages = duration, stages

    @classmethod
    def of(cls, runs):
        """One run adding up ``runs`` (None for no run)."""
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
