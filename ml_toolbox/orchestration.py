"""Orchestration: stage graphs, parallel stages, timeouts, failure strategy and caching.

A :class:`~ml_toolbox.FeaturePipeline` runs its stages one after the other. When a stage declares
``depends_on=[...]`` the pipeline becomes a *graph*: this module plans it (dependency order,
refusing cycles, missing and self dependencies before anything runs), feeds every stage the
output of the stages it depends on (several inputs are joined column-wise, like
:class:`sklearn.pipeline.FeatureUnion`, in the order of ``depends_on``), runs independent stages
concurrently through :class:`joblib.Parallel` -- so whatever backend the user set with
:func:`joblib.parallel_config` (threads, processes, a Dask or Ray cluster) is the one used --,
applies per-stage and per-pipeline timeouts, the ``"fail_fast"`` / ``"continue"`` failure
strategies, and caches fitted stages on disk with :class:`joblib.Memory`, keyed by a fast
``xxh3_128`` hash of the data, the stage's parameters and its class.

Plug-ins see every stage run, wherever it runs: the hooks are called in the calling process,
``before_stage`` when a stage is dispatched and ``after_stage`` / ``on_stage_error`` when its
result is back; retries of a stage that ran in a worker run in the calling process.

See ``docs/orchestration.md``.
"""

from __future__ import annotations

import difflib
import pickle
import time
import traceback
import warnings
from dataclasses import dataclass, field

import joblib
import numpy as np
import xxhash
from sklearn import __version__ as _SKLEARN_VERSION
from sklearn import get_config
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.parallel import Parallel, delayed

from ._warnings_recorder import WarningRecorder
from .base import StageTimeoutError, _TimedOut, call_with_timeout, check_timeout, stage_timeout_call
from .context import RunContext, StageContext
from .exceptions import annotate

__all__ = ["FAILURE_STRATEGIES", "GraphPlan", "PipelineGraphError", "StageTimeoutError",
           "StageFailures", "FeatureGraph", "StageCache", "fast_hash", "plan_graph",
           "check_n_jobs", "check_timeout", "check_failure_strategy", "call_with_timeout",
           "join_outputs"]

FAILURE_STRATEGIES = ("fail_fast", "continue")


# -- errors -------------------------------------------------------------------------------------
class PipelineGraphError(ValueError):
    """The stages' ``depends_on`` do not form a valid graph.

    A cycle, a missing stage, a stage depending on itself. Raised before any stage runs.
    """


_GROUP_CLASSES = {}


class StageFailures(ExceptionGroup):  # noqa: N818 - an ExceptionGroup, named for what it holds
    """Every stage failure of a ``failure_strategy="continue"`` run, in one error.

    An :class:`ExceptionGroup` (``except* ValueError`` picks the failures of that type), and,
    where Python allows it, also an instance of the most specific built-in type all failures
    share: when every failure is a ``ValueError``, ``except ValueError`` catches it as well
    (:meth:`build` makes such an instance).

    Parameters
    ----------
    message : str
        The message, naming the failed and skipped stages.
    exceptions : sequence of Exception
        The failures (the group's ``exceptions``).
    failures : dict, optional
        ``{stage name: exception}``, in the order the stages were planned.
    skipped : dict, optional
        ``{stage name: name of the failed stage it depended on}`` for the stages not run.
    completed : dict, optional
        ``{stage name: fitted stage}`` for the stages that ran well (a fitting run), so the
        work done is not lost.
    """

    def __new__(cls, message, exceptions, failures=None, skipped=None, completed=None):
        self = super().__new__(cls, message, exceptions)
        self.failures = dict(failures or {})
        self.skipped = dict(skipped or {})
        self.completed = dict(completed or {})
        return self

    def __init__(self, message, exceptions, failures=None, skipped=None, completed=None):
        super().__init__(message, exceptions)

    def derive(self, excs):
        """Return a group of the same kind holding other exceptions (what ``except*`` splits make).

        Parameters
        ----------
        excs : sequence of Exception
            The exceptions of the new group.

        Returns
        -------
        StageFailures
            The new group, with the same message.
        """
        return StageFailures(self.message, excs)

    @classmethod
    def build(cls, message, failures, skipped, completed):
        """Build a ``StageFailures`` that is also an instance of the failures' common built-in type.

        Parameters
        ----------
        message : str
            The message.
        failures : dict
            ``{stage name: exception}``.
        skipped : dict
            ``{stage name: the failed stage it depended on}``.
        completed : dict
            ``{stage name: fitted stage}``.

        Returns
        -------
        StageFailures
            The group (of a subclass that also derives from the common type, when there is one).

        Examples
        --------
        >>> group = StageFailures.build("2 stages failed", {"a": ValueError("x"), "b": ValueError("y")},
        ...                             {"c": "a"}, {})
        >>> isinstance(group, ValueError), group.skipped
        (True, {'c': 'a'})
        """
        errors = list(failures.values())
        common = _common_base(errors)
        klass = cls
        for base in common.__mro__:
            if base in (Exception, BaseException, object):
                break
            klass = _GROUP_CLASSES.get(base)
            if klass is None:
                try:
                    klass = type(f"StageFailures[{base.__name__}]", (cls, base),
                                 {"__module__": __name__})
                except TypeError:  # instance lay-out conflict (e.g. OSError): try its base
                    klass = None
                    continue
                _GROUP_CLASSES[base] = klass
            break
        else:
            klass = cls
        if klass is None:
            klass = cls
        return klass(message, errors, failures, skipped, completed)


def _common_base(errors):
    bases = [type(e).__mro__ for e in errors]
    for candidate in bases[0]:
        if all(candidate in mro for mro in bases[1:]):
            # only built-in exception types are combined (a user's class may need arguments)
            while candidate.__module__ != "builtins":
                candidate = candidate.__mro__[1]
            return candidate
    return Exception


# -- checks of the options ----------------------------------------------------------------------
def check_n_jobs(n_jobs, owner):
    """Check ``n_jobs``: None or a non-zero int (as joblib reads it).

    Parameters
    ----------
    n_jobs : int or None
        The value given.
    owner : str
        How error messages name the pipeline.

    Returns
    -------
    int or None
        ``n_jobs`` as an int (or None).

    Raises
    ------
    TypeError
        When it is not an int (a bool included).
    ValueError
        When it is 0.

    Examples
    --------
    >>> check_n_jobs(-1, "FeaturePipeline"), check_n_jobs(None, "FeaturePipeline")
    (-1, None)
    """
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)):
        raise TypeError(f"{owner}: n_jobs must be None or a non-zero int (-1: all cores), got "
                        f"{type(n_jobs).__name__}: {n_jobs!r}.")
    if n_jobs == 0:
        raise ValueError(f"{owner}: n_jobs must be None or a non-zero int (-1: all cores), got 0.")
    return int(n_jobs)


def check_failure_strategy(strategy, owner):
    """Check ``failure_strategy``: ``"fail_fast"`` or ``"continue"``.

    Parameters
    ----------
    strategy : str
        The value given.
    owner : str
        How error messages name the pipeline.

    Returns
    -------
    str
        ``strategy``.

    Raises
    ------
    ValueError
        For another value, suggesting the closest allowed one.

    Examples
    --------
    >>> check_failure_strategy("contine", "FeaturePipeline")
    Traceback (most recent call last):
    ...
    ValueError: FeaturePipeline: failure_strategy must be one of ['fail_fast', 'continue'], got 'contine'. Did you mean 'continue'?
    """
    if strategy in FAILURE_STRATEGIES:
        return strategy
    match = difflib.get_close_matches(str(strategy), FAILURE_STRATEGIES, n=1)
    hint = f" Did you mean {match[0]!r}?" if match else ""
    raise ValueError(f"{owner}: failure_strategy must be one of {list(FAILURE_STRATEGIES)}, got "
                     f"{strategy!r}.{hint}")


# -- the plan -----------------------------------------------------------------------------------
@dataclass
class GraphPlan:
    """How the stages of a pipeline run.

    Made by :func:`plan_graph`.

    Parameters
    ----------
    names : list of str
        Stage names, in declaration order.
    inputs : dict
        ``{name: tuple of the stages whose output it reads}``; an empty tuple reads the
        pipeline's input.
    order : list of str
        A dependency order (stable: declaration order among independent stages).
    levels : list of list of str
        Waves of stages whose inputs are all ready together (run concurrently).
    outputs : list of str
        The stages nobody depends on, in declaration order: the pipeline's output is theirs,
        joined column-wise.
    explicit : bool
        True when some stage declared ``depends_on`` (a graph); False for a plain chain.
    dependents : dict, default={}
        ``{name: the stages that read its output}``.

    Examples
    --------
    >>> from sklearn.preprocessing import MinMaxScaler, StandardScaler
    >>> from ml_toolbox import PipelineStage
    >>> stages = [PipelineStage(StandardScaler()), PipelineStage(MinMaxScaler()),
    ...           PipelineStage(StandardScaler(), depends_on=["scaled", "minmax"])]
    >>> plan = plan_graph(["scaled", "minmax", "both"], stages)
    >>> plan.levels, plan.outputs
    ([['scaled', 'minmax'], ['both']], ['both'])
    >>> plan.ancestors("both"), plan.descendants("scaled")
    (['scaled', 'minmax', 'both'], ['both'])
    """

    names: list
    inputs: dict
    order: list
    levels: list
    outputs: list
    explicit: bool
    dependents: dict = field(default_factory=dict)

    def ancestors(self, name):
        """Return a stage and every stage it (indirectly) reads from.

        Parameters
        ----------
        name : str
            The stage.

        Returns
        -------
        list of str
            The stages, in dependency order.
        """
        keep, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n not in keep:
                keep.add(n)
                todo.extend(self.inputs[n])
        return [n for n in self.order if n in keep]

    def descendants(self, name):
        """Return every stage that (indirectly) reads from a stage.

        Parameters
        ----------
        name : str
            The stage.

        Returns
        -------
        list of str
            The stages, nearest first.
        """
        found, todo = [], list(self.dependents.get(name, ()))
        while todo:
            n = todo.pop(0)
            if n not in found:
                found.append(n)
                todo.extend(self.dependents.get(n, ()))
        return found


def _depends_on(stage, name, owner):
    deps = stage.depends_on
    if deps is None:
        return None
    if isinstance(deps, str):
        deps = [deps]
    if not isinstance(deps, (list, tuple)) or not all(isinstance(d, str) for d in deps):
        raise TypeError(f"{owner}: stage {name!r}: depends_on must be a list of stage names, got "
                        f"{type(stage.depends_on).__name__}: {stage.depends_on!r}.")
    if len(set(deps)) != len(deps):
        raise PipelineGraphError(f"{owner}: stage {name!r}: depends_on lists a stage twice: "
                                 f"{list(deps)}.")
    return tuple(deps)


def plan_graph(names, stages, owner="pipeline"):
    """Plan the stages: check the dependencies and order them. Runs nothing.

    Parameters
    ----------
    names : list of str
        The stage names, in declaration order.
    stages : list of PipelineStage
        The stages (their ``depends_on`` and ``timeout`` are read).
    owner : str, default="pipeline"
        How messages name the pipeline.

    Returns
    -------
    GraphPlan
        The plan: order, waves of concurrent stages, outputs.

    Raises
    ------
    PipelineGraphError
        A stage depends on itself, on a stage that does not exist, or the stages form a cycle;
        the message names the stages.
    TypeError
        ``depends_on`` is not a list of names.
    ValueError
        A stage's ``timeout`` is not positive.

    Examples
    --------
    >>> from ml_toolbox import PipelineStage
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.preprocessing import StandardScaler
    >>> stages = [PipelineStage(StandardScaler(), "scale"),
    ...           PipelineStage(PCA(1), "pca", depends_on=["scale"]),
    ...           PipelineStage(PCA(2), "pca2", depends_on=["scale"])]
    >>> plan = plan_graph(["scale", "pca", "pca2"], stages)
    >>> plan.levels, plan.outputs
    ([['scale'], ['pca', 'pca2']], ['pca', 'pca2'])
    """
    declared = [_depends_on(s, n, owner) for n, s in zip(names, stages)]
    for n, s in zip(names, stages):
        check_timeout(s.timeout, f"{owner}: stage {n!r}")
    explicit = any(d is not None for d in declared)
    if explicit:
        inputs = {n: (d or ()) for n, d in zip(names, declared)}
    else:
        inputs = {n: ((names[i - 1],) if i else ()) for i, n in enumerate(names)}
    known = set(names)
    for n in names:
        for d in inputs[n]:
            if d == n:
                raise PipelineGraphError(f"{owner}: stage {n!r} depends on itself "
                                         f"(depends_on={list(inputs[n])}).")
            if d not in known:
                match = difflib.get_close_matches(d, names, n=1)
                hint = f" Did you mean {match[0]!r}?" if match else ""
                raise PipelineGraphError(
                    f"{owner}: stage {n!r} depends on {d!r}, which is not a stage of this "
                    f"pipeline.{hint} Stages: {list(names)}.")
    dependents = {n: [] for n in names}
    for n in names:
        for d in inputs[n]:
            dependents[d].append(n)
    # Kahn's algorithm by waves; declaration order inside a wave keeps everything deterministic.
    waiting = {n: len(inputs[n]) for n in names}
    ready = [n for n in names if waiting[n] == 0]
    order, levels = [], []
    while ready:
        levels.append(ready)
        order.extend(ready)
        nxt = set()
        for n in ready:
            for m in dependents[n]:
                waiting[m] -= 1
                if waiting[m] == 0:
                    nxt.add(m)
        ready = [n for n in names if n in nxt]
    if len(order) != len(names):
        raise PipelineGraphError(f"{owner}: the stages form a cycle: "
                                 f"{_find_cycle(names, inputs, set(order))}; a graph pipeline "
                                 "must be acyclic.")
    outputs = [n for n in names if not dependents[n]]
    return GraphPlan(list(names), inputs, order, levels, outputs, explicit, dependents)


def _find_cycle(names, inputs, done):
    for start in names:
        if start in done:
            continue
        path, seen, node = [], {}, start
        while node not in seen:
            seen[node] = len(path)
            path.append(node)
            node = next(d for d in inputs[node] if d not in done)
        cycle = path[seen[node]:] + [node]
        # print it in the direction data flows: 'a' -> 'b' means b depends on a
        return " -> ".join(repr(n) for n in reversed(cycle))
    return "?"  # pragma: no cover


# -- joining the outputs of several stages ------------------------------------------------------
def _names_of(X):
    cols = getattr(X, "columns", None)
    return None if cols is None else [str(c) for c in cols]


def join_outputs(parts, names):
    """Join the outputs of several stages column-wise, in order, like ``FeatureUnion``.

    One part is returned as it is. DataFrames are concatenated (columns prefixed with
    ``"<stage>__"``, as ``FeatureUnion`` names them), sparse matrices stacked as CSR, anything
    else stacked as a dense 2-D array.

    Parameters
    ----------
    parts : list
        The outputs (DataFrames, arrays or sparse matrices), in order.
    names : list of str
        The stages' names (prefixes of DataFrame columns).

    Returns
    -------
    DataFrame, numpy.ndarray or scipy.sparse.csr_matrix
        The joined output.

    Examples
    --------
    >>> import pandas as pd
    >>> list(join_outputs([pd.DataFrame({"x": [1]}), pd.DataFrame({"y": [2]})], ["a", "b"]).columns)
    ['a__x', 'b__y']
    """
    if len(parts) == 1:
        return parts[0]
    from scipy import sparse

    if any(sparse.issparse(p) for p in parts):
        return sparse.hstack([p if sparse.issparse(p) else sparse.csr_matrix(np.asarray(p))
                              for p in parts]).tocsr()
    if all(hasattr(p, "iloc") and hasattr(p, "columns") for p in parts):
        import pandas as pd

        renamed = [p.rename(columns=lambda c, n=n: f"{n}__{c}") for p, n in zip(parts, names)]
        return pd.concat(renamed, axis=1)
    arrays = [np.asarray(p) for p in parts]
    arrays = [a.reshape(-1, 1) if a.ndim == 1 else a for a in arrays]
    return np.hstack(arrays)


# -- fast hashing -------------------------------------------------------------------------------
def _update_array(h, a):
    if a.dtype.hasobject:
        h.update(pickle.dumps(a, protocol=5))
        return
    h.update(f"ndarray|{a.dtype.str}|{a.shape}|".encode())
    # the values in C order, whatever the memory layout (a copy only for non-C layouts)
    h.update(a.data if a.flags.c_contiguous else np.ascontiguousarray(a).data)


def _update(h, obj):
    if obj is None:
        h.update(b"None")
    elif isinstance(obj, np.ndarray):
        _update_array(h, obj)
    elif hasattr(obj, "iloc") and hasattr(obj, "dtypes"):  # pandas DataFrame / Series
        import pandas as pd

        frame = obj.to_frame() if isinstance(obj, pd.Series) else obj
        h.update(f"{type(obj).__name__}|{list(frame.columns)!r}|{list(map(str, frame.dtypes))!r}|"
                 .encode())
        index = frame.index
        if isinstance(index, pd.RangeIndex):
            h.update(repr(index).encode())
        else:
            _update_array(h, pd.util.hash_pandas_object(index, index=False).to_numpy())
        for i in range(frame.shape[1]):
            col = frame.iloc[:, i]
            values = col.to_numpy() if col.dtype.kind in "biufcmM" else None
            if values is None or values.dtype.hasobject:
                values = pd.util.hash_pandas_object(col, index=False).to_numpy()
            _update_array(h, values)
    elif hasattr(obj, "tocsr") and hasattr(obj, "nnz"):  # scipy sparse
        m = obj.tocsr()
        h.update(f"sparse|{m.shape}|".encode())
        for part in (m.data, m.indices, m.indptr):
            _update_array(h, np.ascontiguousarray(part))
    else:
        h.update(pickle.dumps(obj, protocol=5))


def fast_hash(*objects):
    """``xxh3_128`` hex digest of data (numpy, pandas, scipy sparse, or anything picklable).

    Array buffers are hashed as they are, without pickling: ~3 ms for 76 MB, where the md5 over a
    pickle that :func:`joblib.hash` computes takes ~100 ms. Dtypes, shapes, column names and the
    index are part of the hash.

    Parameters
    ----------
    *objects : object
        The data to hash, together.

    Returns
    -------
    str
        32 hex digits.

    Examples
    --------
    >>> import numpy as np
    >>> fast_hash(np.zeros(3)) == fast_hash(np.zeros(3))
    True
    >>> fast_hash(np.zeros(3)) == fast_hash(np.zeros(3, dtype=np.float32))
    False
    """
    h = xxhash.xxh3_128()
    for obj in objects:
        _update(h, obj)
        h.update(b"\x00|")
    return h.hexdigest()


def _stage_identity(stage):
    """What a stage computes: its estimator's class and parameters (not its name, retry...)."""
    est = stage.estimator
    output = getattr(stage, "_sklearn_output_config", None)
    parts = [_SKLEARN_VERSION, repr(output), get_config().get("transform_output")]
    if est is None or isinstance(est, str):
        parts.append(f"passthrough:{est!r}")
    elif hasattr(est, "fit"):
        parts.append(f"{type(est).__module__}.{type(est).__qualname__}")
        parts.append(joblib.hash(est.get_params(deep=True)) if hasattr(est, "get_params")
                     else joblib.hash(est))
    else:  # a function: its name, and its code, so an edited function is a new stage
        parts.append(f"{getattr(est, '__module__', '')}.{getattr(est, '__qualname__', est)}")
        code = getattr(est, "__code__", None)
        if code is not None:
            parts.append(joblib.hash((code.co_code, repr(code.co_consts))))
        parts.append(joblib.hash(stage.kw_args))
    return "|".join(map(str, parts))


# -- caching ------------------------------------------------------------------------------------
def _fit_for_cache(key, mode, stage, X, y, params):  # only ``key`` and ``mode`` are hashed
    fitted = clone(stage)
    out = fitted.run(X, y, mode, **params)
    return fitted, out


class StageCache:
    """Fitted feature stages on disk, through :class:`joblib.Memory`.

    The key of a stage run is a fast hash of what determines its result: the stage's class and
    parameters (:func:`joblib.hash` of ``get_params``, small) and the key of its input, which is
    the ``xxh3_128`` of the pipeline's data for the first stages and the keys of the upstream
    stages after them (so intermediate outputs are never hashed), plus ``y`` and the library
    versions. joblib then only hashes that short key, not the data.

    Parameters
    ----------
    memory : str, path or joblib.Memory
        Where the cache lives.
    bytes_limit : int or str, default=None
        Size bound, e.g. ``"500M"``: after a run that stored something, the least recently
        used entries are removed (:meth:`joblib.Memory.reduce_size`).

    Examples
    --------
    >>> import tempfile
    >>> cache = StageCache(tempfile.mkdtemp(), bytes_limit="500M")
    >>> cache.bytes_limit
    '500M'
    """

    def __init__(self, memory, bytes_limit=None):
        if isinstance(memory, joblib.Memory):
            self.memory = memory
        elif isinstance(memory, (str, bytes)) or hasattr(memory, "__fspath__"):
            self.memory = joblib.Memory(location=memory, verbose=0)
        else:
            raise TypeError(f"memory must be None, a path or a joblib.Memory, got "
                            f"{type(memory).__name__}: {memory!r}.")
        self.bytes_limit = bytes_limit

    def function(self):
        """Return the cached fitting function (joblib hashes only the stage run's key and mode).

        Returns
        -------
        callable
            ``joblib.Memory.cache`` of the function that fits a stage.
        """
        return self.memory.cache(_fit_for_cache, ignore=["stage", "X", "y", "params"])

    def reduce(self):
        """Remove the least recently used entries beyond ``bytes_limit`` (when set)."""
        if self.bytes_limit is not None and self.memory.location is not None:
            self.memory.reduce_size(bytes_limit=self.bytes_limit)


def data_key(X, y):
    """The cache key of a pipeline's input."""
    return fast_hash(X, y)


def stage_key(stage, input_keys, mode):
    """The cache key of one stage run: what it computes and what it reads."""
    return xxhash.xxh3_128(f"{_stage_identity(stage)}|{mode}|{'|'.join(input_keys)}"
                           .encode()).hexdigest()


# -- one stage run, wherever it runs ------------------------------------------------------------
@dataclass
class _Outcome:
    stage: object = None
    output: object = None
    error: BaseException = None
    trace: str = None
    duration: float = 0.0
    cache: str = None
    warnings: list = field(default_factory=list)


def _run_one(stage, X, y, mode, fitting, params, limit, limit_text, name, owner, cache, key,
             capture):
    """Run one stage once; never raises (joblib would cancel the other stages): the error is
    returned in the outcome. Runs in the caller's process or in a joblib worker."""
    outcome = _Outcome()
    start = time.perf_counter()

    def work():
        if fitting and cache is not None and key is not None:
            func = cache.function()
            hit = func.check_call_in_cache(key, mode, stage, X, y, params)
            fitted, out = func(key, mode, stage, X, y, params)
            outcome.cache = "hit" if hit else "miss"
            return fitted, out
        run_stage = clone(stage) if fitting else stage
        return run_stage, run_stage.run(X, y, mode, **params)

    try:
        if capture:  # (thread-safe: joblib's threads record at once; shown by the parent)
            recorder = WarningRecorder(show=False)
            try:
                outcome.stage, outcome.output = call_with_timeout(work, limit)
            finally:
                recorder.close()
                outcome.warnings = [(w.message, w.category, w.filename, w.lineno)
                                    for w in recorder.caught]
        else:
            outcome.stage, outcome.output = call_with_timeout(work, limit)
    except _TimedOut:
        outcome.error = StageTimeoutError(
            f"{owner}: stage {name!r} exceeded {limit_text} and was stopped waiting for it (it may "
            "still "
            "be running in its thread; see docs/orchestration.md, 'Timeouts').",
            name, limit)
    except BaseException as error:  # noqa: BLE001 - reported in the parent, never swallowed
        outcome.error = error
        outcome.trace = "".join(traceback.format_exception(error))
    outcome.duration = time.perf_counter() - start
    return outcome


# -- the fitted graph, as one transformer (used by the inference pipeline) -----------------------
class FeatureGraph(TransformerMixin, BaseEstimator):
    """The fitted stages of a graph feature pipeline, as one fitted transformer.

    The inference pipeline serves a graph feature pipeline through this object (one stage);
    ``transform`` runs the fitted stages in dependency order, in the calling process.

    Parameters
    ----------
    stages : list of PipelineStage
        Fitted stages, in declaration order.
    names : list of str
        Their names.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import MinMaxScaler, StandardScaler
    >>> from ml_toolbox import PipelineStage
    >>> X = np.arange(8.0).reshape(4, 2)
    >>> scale = PipelineStage(StandardScaler())
    >>> minmax = PipelineStage(MinMaxScaler(), depends_on=["scale"])
    >>> _ = minmax.run(scale.run(X, None, "fit_transform"), None, "fit_transform")
    >>> FeatureGraph([scale, minmax], ["scale", "minmax"]).transform(X).shape
    (4, 2)
    """

    def __init__(self, stages=None, names=None):
        self.stages = stages
        self.names = names

    def fit(self, X, y=None):
        """Do nothing: the graph is built from fitted stages.

        Parameters
        ----------
        X : object
            Ignored.
        y : object, optional
            Ignored.

        Returns
        -------
        FeatureGraph
            ``self``.
        """
        return self

    def __sklearn_is_fitted__(self):
        return True

    def _plan(self):
        plan = self.__dict__.get("_plan_cache")
        if plan is None:
            plan = self.__dict__["_plan_cache"] = plan_graph(self.names, self.stages)
        return plan

    def transform(self, X):
        """Return the features of ``X``: every fitted stage, in dependency order.

        Parameters
        ----------
        X : array-like or DataFrame
            The input.

        Returns
        -------
        DataFrame, numpy.ndarray or sparse matrix
            The outputs of the stages nobody depends on, joined column-wise.
        """
        plan = self._plan()
        by_name = dict(zip(self.names, self.stages))
        outputs = {}
        for n in plan.order:
            deps = plan.inputs[n]
            Xin = X if not deps else join_outputs([outputs[d] for d in deps], deps)
            outputs[n] = by_name[n].run(Xin, None, "transform")
        return join_outputs([outputs[n] for n in plan.outputs], plan.outputs)

    def get_feature_names_out(self, input_features=None):
        """Return the output names, as the feature pipeline gives them.

        Parameters
        ----------
        input_features : array-like of str, optional
            The input's column names.

        Returns
        -------
        numpy.ndarray of str
            The output feature names.
        """
        return graph_feature_names(self._plan(), dict(zip(self.names, self.stages)),
                                   input_features)


def graph_feature_names(plan, by_name, input_features):
    """Feature names through a graph: joined inputs are prefixed ``"<stage>__"``."""
    out = {}

    def joined(names):
        if len(names) == 1:
            return out[names[0]]
        return np.asarray([f"{n}__{f}" for n in names for f in out[n]], dtype=object)

    for n in plan.order:
        deps = plan.inputs[n]
        features_in = input_features if not deps else joined(deps)
        stage = by_name[n]
        if not hasattr(stage, "get_feature_names_out"):
            raise AttributeError(f"stage {n!r} ({type(stage.estimator_).__name__}) does not "
                                 "provide get_feature_names_out.")
        out[n] = np.asarray(stage.get_feature_names_out(features_in), dtype=object)
    return joined(plan.outputs)


# -- running a plan -----------------------------------------------------------------------------
def run_plan(pipeline, plan, stages, X, y, *, fitting, mode, run_mode, parent=None, n_jobs=None,
             cache=None, failure_strategy="fail_fast", timeout=None, targets=None,
             clock=time.perf_counter):
    """Run the stages of ``plan``; return ``(output, {name: stage as it ran})``.

    Parameters
    ----------
    pipeline : BasePipeline
        Whose name, plug-ins and retry policy apply.
    plan : GraphPlan
    stages : list of PipelineStage
        Templates when ``fitting``, fitted stages otherwise; in ``plan.names`` order.
    X, y : data
    fitting : bool
    mode : str
        The :meth:`PipelineStage.run` mode of every stage.
    run_mode : str
        The execution's mode as plug-ins see it.
    parent : UnifiedMLPipeline, optional
    n_jobs : int, optional
        Independent stages run through ``joblib.Parallel(n_jobs)`` when it resolves (under the
        active :func:`joblib.parallel_config`) to more than one worker.
    cache : StageCache, optional
    failure_strategy : {"fail_fast", "continue"}
    timeout : float, optional
        Seconds for the whole run.
    targets : list of str, optional
        Run only what these stages need and return their output (default: ``plan.outputs``).
    """
    from .base import _policy_for

    owner = pipeline.owner
    by_name = dict(zip(plan.names, stages))
    targets = plan.outputs if targets is None else targets
    if targets is not plan.outputs:
        needed = set()
        for t in targets:
            needed.update(plan.ancestors(t))
        order = [n for n in plan.order if n in needed]
    else:
        order = plan.order
    plugins = pipeline._plugins(parent)
    policy = pipeline._retry_policy(parent)
    capture = any(p.captures_warnings for p in plugins)
    parallel = n_jobs is not None and joblib.effective_n_jobs(n_jobs) != 1 and len(order) > 1
    if parallel:
        rank = {n: i for i, level in enumerate(plan.levels) for n in level}
        waves = [[n for n in order if rank[n] == i] for i in range(len(plan.levels))]
        waves = [w for w in waves if w]
    else:
        waves = [[n] for n in order]
    keys = {}
    if cache is not None and fitting:
        root_key = data_key(X, y)
    run = RunContext(pipeline, pipeline.name, run_mode, order)
    deadline = None if timeout is None else clock() + timeout
    outputs, ran, failures, skipped = {}, {}, {}, {}
    stored = False
    for p in plugins:
        p.before_run(run)
    try:
        for wave in waves:
            jobs, contexts = [], []
            for n in wave:
                bad = next((d for d in plan.inputs[n] if d in failures or d in skipped), None)
                if bad is not None:
                    skipped[n] = skipped.get(bad, bad)
                    continue
                deps = plan.inputs[n]
                Xin = X if not deps else join_outputs([outputs[d] for d in deps], deps)
                template = by_name[n]
                ctx = StageContext(run, template, n, order.index(n), mode, fitting, Xin, y)
                run.stages.append(ctx)
                limit, limit_text = template.timeout, None
                if limit is not None:
                    limit_text = f"its timeout of {limit:g} s"
                if deadline is not None:
                    left = deadline - clock()
                    if limit is None or left < limit:
                        limit = max(left, 0.0)
                        limit_text = f"the pipeline's timeout of {timeout:g} s"
                key = None
                if cache is not None and fitting:
                    key = keys[n] = stage_key(template, [keys[d] for d in deps] or [root_key],
                                              mode)
                for p in plugins:
                    p.before_stage(ctx)
                ctx.start = clock()
                contexts.append(ctx)
                jobs.append((template, Xin, y, mode, fitting, {}, limit, limit_text, n, owner,
                             cache, key, capture))
            if not jobs:
                continue
            if parallel and len(jobs) > 1:
                results = Parallel(n_jobs=n_jobs)(delayed(_run_one)(*job) for job in jobs)
            else:
                results = [_run_one(*job) for job in jobs]
            first_error = None
            for ctx, job, outcome in zip(contexts, jobs, results):
                stage_policy = _policy_for(ctx.template, policy)
                finishing = clock()
                try:
                    output = _finish(ctx, job, outcome, plugins, stage_policy)
                except BaseException as error:
                    ctx.duration = (outcome.duration + clock() - finishing if parallel
                                    else clock() - ctx.start)
                    ctx.status = "failed"
                    ctx.error = error
                    annotate(error, pipeline.name, ctx.stage_name, mode, parent)
                    for p in plugins:
                        p.on_stage_error(ctx, error)
                    failures[ctx.stage_name] = error
                    if first_error is None:
                        first_error = error
                    continue
                if outcome.cache == "miss":
                    stored = True
                # in a parallel wave, the worker's own time (the wave waits for its slowest)
                ctx.duration = (outcome.duration + clock() - finishing if parallel
                                else clock() - ctx.start)
                ctx.status = "success"
                ctx.output = output
                if outcome.cache is not None:
                    ctx.extra["cache"] = outcome.cache
                for p in plugins:
                    p.after_stage(ctx)
                outputs[ctx.stage_name] = output
                ran[ctx.stage_name] = ctx.stage
            if first_error is not None and failure_strategy == "fail_fast":
                others = [n for n in failures if failures[n] is not first_error]
                if others:
                    first_error.add_note(f"[ml_toolbox] in the same wave, also failed: {others}")
                raise first_error
        if failures:
            lines = [f"  - stage {n!r}: {type(e).__name__}: {e}" for n, e in failures.items()]
            lines += [f"  - stage {n!r}: skipped (depends on failed stage {f!r})"
                      for n, f in skipped.items()]
            raise StageFailures.build(
                f"{owner}: {len(failures)} stage(s) failed during {run_mode} "
                f"(failure_strategy='continue'):\n" + "\n".join(lines),
                failures, skipped, ran)
    except BaseException as error:
        run.duration = clock() - run.start
        run.status = "failed"
        run.error = error
        for p in plugins:
            p.on_run_error(run, error)
        raise
    finally:
        if stored:
            cache.reduce()
    run.duration = clock() - run.start
    run.status = "success"
    for p in plugins:
        p.after_run(run)
    result = join_outputs([outputs[t] for t in targets], targets)
    return result, ran


def _finish(ctx, job, outcome, plugins, policy):
    """Turn a dispatched outcome into the stage's result, through the retry policy.

    Attempt 1 is the dispatched run; later attempts (a retry policy's) run here, in the
    calling process, with the plug-ins' ``on_stage_retry`` called first.
    """
    pending = [outcome]

    def attempt():
        if ctx.attempt > 1:
            for p in plugins:
                p.on_stage_retry(ctx, ctx.last_error)
        result = pending.pop() if pending else _run_one(*_with_input(job, ctx.X))
        _show_warnings(ctx, result.warnings)
        if result.error is not None:
            error = result.error
            if error.__traceback__ is None and result.trace:  # it crossed a process boundary
                error.add_note("[ml_toolbox] traceback in the worker:\n" + result.trace)
            raise error
        ctx.stage = result.stage
        if result.cache is not None:
            outcome.cache = result.cache
        return result.output

    if policy is None:
        return attempt()
    return policy.call(attempt, ctx)


def _with_input(job, X):
    job = list(job)
    job[1] = X
    return tuple(job)


def _show_warnings(ctx, caught):
    if not caught:
        return
    ctx.warnings = [warnings.WarningMessage(m, c, f, ln) for m, c, f, ln in caught]
    for message, category, filename, lineno in caught:
        warnings.warn_explicit(message, category, filename, lineno)
