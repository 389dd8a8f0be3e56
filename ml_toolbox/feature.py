"""``FeaturePipeline``: stages that turn raw X into features."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._schema import InputSchema, check_y_length, shape_of
from .base import BasePipeline, StepsMixin, composite_input_tags
from .orchestration import (FeatureGraph, StageCache, check_failure_strategy, check_n_jobs,
                            check_timeout, graph_feature_names, plan_graph, run_plan)
from .stage import PipelineStage

__all__ = ["FeaturePipeline"]


class FeaturePipeline(StepsMixin, BasePipeline):
    """A sequence of transformer stages: ``X -> features``.

    Behaves like a :class:`sklearn.pipeline.Pipeline` of transformers -- the same stages give the
    same numbers, bit for bit -- but fitting never touches the stages you passed (it fits clones,
    kept in ``stages_``), it checks its input against what it saw at fit time, and its stages run
    through the execution loop, so a monitor, a debugger or a retry policy can be attached.

    Parameters
    ----------
    steps : list, default=None
        ``(name, estimator)`` pairs, :class:`~ml_toolbox.PipelineStage` objects, bare estimators
        or functions (named automatically), or ``"passthrough"``. None means no stage (identity).
    name : str, default="feature_pipeline"
        Name used by plug-ins and error messages.
    monitor : PipelineMonitor, default=None
        Records every stage run (time, rows, bytes, errors, warnings, retries).
    debugger : PipelineDebugger, default=None
        Breakpoints, traces, snapshots and post-mortems of stage runs.
    retry_handler : RetryHandler, default=None
        How a failing stage run is re-attempted.
    enable_retry : bool, default=True
        Whether ``retry_handler`` (or the one handed down by a UnifiedMLPipeline) applies.
    n_jobs : int, default=None
        Independent stages of a graph (stages that declare ``depends_on``) run concurrently
        through :class:`joblib.Parallel` with this many workers, on the backend set with
        :func:`joblib.parallel_config` (e.g. ``"dask"``). None means 1 unless such a context
        says otherwise, as in scikit-learn.
    memory : str, path or joblib.Memory, default=None
        Cache the fitted stages there: a refit with unchanged data, parameters and stage classes
        loads them instead of fitting (see :mod:`ml_toolbox.orchestration`).
    memory_limit : int or str, default=None
        Bound on the cache's size on disk (bytes, or ``"500M"``, ``"2G"``); least recently used
        entries are removed first.
    failure_strategy : {"fail_fast", "continue"}, default="fail_fast"
        ``"fail_fast"`` stops at the first failing stage and raises its own error;
        ``"continue"`` keeps running the stages that do not depend on a failed one, skips its
        dependents, and raises one :class:`~ml_toolbox.orchestration.StageFailures` listing
        every failure at the end.
    timeout : float, default=None
        Seconds the whole pipeline run may take (each stage can also have its own ``timeout``).

    Attributes
    ----------
    stages_ : list of PipelineStage
        The fitted stages.
    stage_names_ : list of str
        The stages' names, in order.
    input_schema_ : InputSchema
        Columns, dtypes and width seen at fit time.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of str
        Only for DataFrame input.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.impute import SimpleImputer
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import FeaturePipeline
    >>> fp = FeaturePipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    >>> fp.fit_transform(np.array([[1.0], [np.nan], [3.0]])).ravel()
    array([-1.22474487,  0.        ,  1.22474487])
    >>> fp.transform(np.array([[np.nan]]), until="impute")
    array([[2.]])
    >>> fp["scale"].estimator_.mean_
    array([2.])
    """

    def __init__(self, steps=None, *, name="feature_pipeline", monitor=None, debugger=None,
                 retry_handler=None, enable_retry=True, n_jobs=None, memory=None,
                 memory_limit=None, failure_strategy="fail_fast", timeout=None):
        self.steps = steps
        self.name = name
        self.monitor = monitor
        self.debugger = debugger
        self.retry_handler = retry_handler
        self.enable_retry = enable_retry
        self.n_jobs = n_jobs
        self.memory = memory
        self.memory_limit = memory_limit
        self.failure_strategy = failure_strategy
        self.timeout = timeout

    # -- orchestration (graphs, parallel stages, timeouts, caching) --------------------------
    def _orchestrated(self, stages):
        """Whether these stages need the orchestrator rather than the plain loop."""
        if (self.memory is not None or self.timeout is not None
                or self.failure_strategy != "fail_fast"):
            return True
        return any(s.depends_on is not None or s.timeout is not None for s in stages)

    def _check_options(self):
        owner = self.owner
        check_n_jobs(self.n_jobs, owner)
        check_failure_strategy(self.failure_strategy, owner)
        check_timeout(self.timeout, owner)

    def _graph(self, names, stages):
        """The plan of a graph pipeline, or None for a plain chain."""
        if not any(s.depends_on is not None for s in stages):
            return None
        return plan_graph(names, stages, self.owner)

    def _run_planned(self, names, stages, X, y, *, fitting, parent, targets=None):
        plan = plan_graph(names, stages, self.owner)
        cache = None
        if fitting and self.memory is not None:
            cache = StageCache(self.memory, self.memory_limit)
        mode = "fit_transform" if fitting else "transform"
        return run_plan(self, plan, stages, X, y, fitting=fitting, mode=mode,
                        run_mode="fit" if fitting else "transform", parent=parent,
                        n_jobs=self.n_jobs, cache=cache,
                        failure_strategy=self.failure_strategy if fitting else "fail_fast",
                        timeout=self.timeout, targets=targets)

    def _inference_state(self, state):
        """The state the inference pipeline serves: a graph becomes one fitted stage."""
        stages, names = state["stages_"], state["stage_names_"]
        if not any(s.depends_on is not None for s in stages):
            return state
        graph = FeatureGraph(stages=list(stages), names=list(names))
        stage = PipelineStage(graph, name=self.name)
        stage.estimator_ = graph
        return {**state, "stages_": [stage], "stage_names_": [self.name]}

    # -- displays ----------------------------------------------------------------------------
    def _describe_stages(self):
        """The fitted stages, or before fit the ones ``steps`` defines, for the displays."""
        if "stages_" in self.__dict__:
            return self.stage_names_, self.stages_
        try:
            return self._templates()
        except (TypeError, ValueError):
            return [], []

    # -- fitting ----------------------------------------------------------------------------
    def _fit_state(self, X, y, parent=None):
        """Fit clones of the stages; return ``(state, Xt)`` without changing ``self``."""
        names, templates = self._templates()
        self._check_options()
        if self._orchestrated(templates):
            Xt, ran = self._run_planned(names, templates, X, y, fitting=True, parent=parent)
            return {"stages_": [ran[n] for n in names], "stage_names_": names}, Xt
        Xt, ran = self._run_stages(templates, X, y, ["fit_transform"] * len(templates),
                                   fitting=True, names=names, parent=parent, run_mode="fit")
        return {"stages_": ran, "stage_names_": names}, Xt

    def _commit(self, state, schema):
        """Make a fitted state current, all at once (a failed fit never gets here)."""
        self.__dict__.pop("feature_names_in_", None)
        self.__dict__.update(state)
        self.input_schema_ = schema
        self.n_features_in_ = schema.n_features
        if schema.columns is not None:
            self.feature_names_in_ = np.asarray(schema.columns, dtype=object)

    def fit(self, X, y=None):
        """Fit every stage on ``X`` (and ``y``), in order.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input; its columns, dtypes and width become ``input_schema_``.
        y : array-like of shape (n_samples,), default=None
            Targets, for stages that use them (e.g. a target encoder).

        Returns
        -------
        FeaturePipeline
            This pipeline; the fitted stages are ``stages_``.
        """
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X, y=None):
        """Fit every stage and return the features of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input; its columns, dtypes and width become ``input_schema_``.
        y : array-like of shape (n_samples,), default=None
            Targets, for stages that use them (e.g. a target encoder).

        Returns
        -------
        ndarray, sparse matrix or DataFrame of shape (n_samples, n_features_out)
            The last stage's output (``X`` itself when there is no stage).
        """
        schema = InputSchema.from_data(X, self.owner)
        check_y_length(shape_of(X), y, self.owner)
        state, Xt = self._fit_state(X, y)
        self._commit(state, schema)
        return Xt

    # -- using ------------------------------------------------------------------------------
    def _transform(self, X, parent=None, until=None, stages=None, names=None):
        stages = self.stages_ if stages is None else stages
        names = self.stage_names_ if names is None else names
        if any(s.depends_on is not None for s in stages):
            Xt, _ = self._run_planned(names, stages, X, None, fitting=False, parent=parent,
                                      targets=None if until is None else [until])
            return Xt
        if until is not None:
            stop = names.index(until) + 1
            stages, names = stages[:stop], names[:stop]
        if not stages:
            return X
        Xt, _ = self._run_stages(stages, X, None, ["transform"] * len(stages), fitting=False,
                                 names=names, parent=parent, run_mode="transform")
        return Xt

    def transform(self, X, until=None):
        """Compute the features of ``X``; with ``until="name"``, the output of that stage.

        ``until`` runs the fitted stages up to and including the named one, refitting nothing:
        "what does the data look like after stage k".

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or DataFrame
            Raw input, checked against ``input_schema_``.
        until : str, default=None
            Name of the last stage to run; None runs them all.

        Returns
        -------
        ndarray, sparse matrix or DataFrame of shape (n_samples, n_features_out)
            The output of the last stage run.

        Raises
        ------
        ValueError
            ``until`` names no stage (the message lists the stages).
        InputSchemaError
            ``X`` has other columns, dtypes or width than at fit time.
        """
        check_is_fitted(self)
        if until is not None:
            self._check_stage_name(until)
        X = self.input_schema_.check(X, self.owner)
        return self._transform(X, until=until)

    def get_feature_names_out(self, input_features=None):
        """Return the names of the output features, passed through every stage.

        As scikit-learn's Pipeline does: each stage's ``get_feature_names_out`` receives the
        previous stage's names.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Names of the input features; None uses ``feature_names_in_`` when fitted on a
            DataFrame.

        Returns
        -------
        ndarray of str
            The names of the output features.

        Raises
        ------
        AttributeError
            A stage does not provide ``get_feature_names_out``.
        """
        check_is_fitted(self)
        names = input_features
        if names is None and "feature_names_in_" in self.__dict__:
            names = self.feature_names_in_
        plan = self._graph(self.stage_names_, self.stages_)
        if plan is not None:
            return graph_feature_names(plan, dict(zip(self.stage_names_, self.stages_)), names)
        for name, stage in zip(self.stage_names_, self.stages_):
            if not hasattr(stage, "get_feature_names_out"):
                raise AttributeError(
                    f"{self.owner}: stage {name!r} ({type(stage.estimator_).__name__}) does not "
                    "provide get_feature_names_out.")
            names = stage.get_feature_names_out(names)
        return names

    def set_output(self, *, transform=None):
        """Set the output container of every stage ("default", "pandas", "polars").

        Parameters
        ----------
        transform : {"default", "pandas", "polars"}, default=None
            The container; None leaves the configuration as it is.

        Returns
        -------
        FeaturePipeline
            This pipeline.
        """
        for stage in self._templates()[1]:
            stage.set_output(transform=transform)
        for stage in self.__dict__.get("stages_", []):
            stage.set_output(transform=transform)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        from sklearn.utils._tags import TransformerTags

        tags.transformer_tags = TransformerTags()
        try:
            parts = [s[1] if isinstance(s, tuple) else s for s in (self.steps or [])]
        except TypeError:
            return tags
        return composite_input_tags(tags, parts)
