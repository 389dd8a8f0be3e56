"""What a saved artifact holds: the model, not the plug-ins; and which types a skops load trusts.

A pipeline's plug-ins are the user's session, not the model: a debugger keeps copies of the inputs
it saw (training rows included), a monitor its whole history, a retry handler the user's own
functions. :func:`for_save` gives the store an object to write with every plug-in slot empty
(``plugins="drop"``, the default), made of shallow copies of the pipelines -- the user's
pipeline, its fitted stages and its parameters are shared, never changed, so ``clone`` and
``get_params`` of the pipeline saved are as before. ``plugins="keep"`` writes them too, and a
plug-in that cannot be written is named in the error.
"""

from __future__ import annotations

import pickle

from ml_toolbox.store.errors import PluginSaveError

__all__ = ["PLUGIN_SLOTS", "PluginSaveError", "for_save", "trusted_types"]

#: The attributes of ml_toolbox's pipelines that hold plug-ins.
PLUGIN_SLOTS = ("monitor", "debugger", "retry", "retry_handler")
PLUGIN_OPTIONS = ("drop", "keep")
_SESSION_ONLY = ("_progress_plugin",)  # never saved: a progress bar of this session
#: Types outside ml_toolbox that its own pipelines hold and that skops does not trust by default:
#: a numpy dtype (scikit-learn's SimpleImputer keeps the one it fitted on) is data, not code.
_ALSO_TRUSTED = ("numpy.dtype",)


def _pipeline_types():
    from ml_toolbox.base import BasePipeline
    from ml_toolbox.unified import UnifiedMLPipeline

    return (BasePipeline, UnifiedMLPipeline)


def _without_plugins(obj, memo, types):
    if not isinstance(obj, types):
        return obj
    done = memo.get(id(obj))
    if done is not None:
        return done
    new = object.__new__(type(obj))
    memo[id(obj)] = new
    state = {}
    for key, value in obj.__dict__.items():
        if key in _SESSION_ONLY:
            continue
        if key in PLUGIN_SLOTS:
            value = None
        elif isinstance(value, types):
            value = _without_plugins(value, memo, types)
        state[key] = value
    new.__dict__.update(state)
    return new


def _plugins_of(obj, types, seen=None, path=None):
    """``[(where, slot, plug-in)]`` attached anywhere in the pipelines of ``obj``."""
    seen = set() if seen is None else seen
    if not isinstance(obj, types) or id(obj) in seen:
        return []
    seen.add(id(obj))
    where = path or getattr(obj, "owner", type(obj).__name__)
    found = []
    for key, value in obj.__dict__.items():
        if key in PLUGIN_SLOTS and value is not None and not isinstance(value, bool):
            found.append((where, key, value))
        elif isinstance(value, types):
            found += _plugins_of(value, types, seen, getattr(value, "owner", key))
    return found


def _check_writable(obj, format, types):
    for where, slot, plugin in _plugins_of(obj, types):
        try:
            if format == "skops":
                import skops.io as sio

                sio.dumps(plugin)
            else:
                pickle.dumps(plugin, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # noqa: BLE001 - re-raised, naming the plug-in
            raise PluginSaveError(
                f"Cannot save the {slot} plug-in ({type(plugin).__name__}) of {where} with "
                f"plugins='keep' (format={format!r}): {type(error).__name__}: {error}. Save without "
                "plug-ins (the default, plugins='drop') and attach them again after loading."
            ) from error


def for_save(obj, plugins="drop", format="joblib"):
    """The object a store writes for ``obj``.

    Parameters
    ----------
    obj : object
        What is being saved; only ml_toolbox pipelines are changed (copied without plug-ins).
    plugins : {"drop", "keep"}, default="drop"
        ``"drop"``: every plug-in slot (``monitor``, ``debugger``, ``retry``,
        ``retry_handler``) of the pipelines is empty in the artifact; attach them again after
        loading. ``"keep"``: saved as they are, after checking each can be written in
        ``format`` (a :class:`PluginSaveError` names the one that cannot).
    format : str
        The artifact's format (``"joblib"`` or ``"skops"``).

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> from ml_toolbox import PipelineMonitor, UnifiedMLPipeline
    >>> pipe = UnifiedMLPipeline(model=Ridge(), monitor=PipelineMonitor())
    >>> for_save(pipe).monitor is None, pipe.monitor is not None
    (True, True)
    """
    if plugins not in PLUGIN_OPTIONS:
        raise ValueError(f"plugins must be one of {list(PLUGIN_OPTIONS)}; got {plugins!r}.")
    types = _pipeline_types()
    if plugins == "keep":
        _check_writable(obj, format, types)
        return obj
    return _without_plugins(obj, {}, types)


def trusted_types(untrusted, trusted=None):
    """The types a skops load accepts: those the user ``trusted``, ml_toolbox's own
    (``ml_toolbox.*``) and ``numpy.dtype``; returns ``(accepted, refused)`` of ``untrusted``."""
    trusted = set(trusted or ())
    accepted, refused = [], []
    for name in untrusted:
        if name in trusted or name.startswith("ml_toolbox.") or name in _ALSO_TRUSTED:
            accepted.append(name)
        else:
            refused.append(name)
    return accepted, refused
