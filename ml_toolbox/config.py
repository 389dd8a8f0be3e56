"""Pipelines as plain config (a dict or a JSON file), validated before anything is fitted.

``UnifiedMLPipeline.from_config(config)`` builds a pipeline; ``pipeline.to_config()`` gives the
config back (``from_config(p.to_config())`` has the same parameters as ``p``). Components are
named: any scikit-learn estimator by its class name (``"PCA"``, ``"StandardScaler"`` -- found by
scikit-learn's own discovery), ml_toolbox's ``"AutoPreprocessor"``, and whatever you register on
an :class:`~ml_toolbox.MLToolbox`.

The config::

    {
      "name": "churn",                                   # optional
      "features": [                                      # null: the toolbox's default stage
        {"name": "impute", "component": "SimpleImputer", "params": {"strategy": "median"}},
        {"name": "pca", "component": "PCA", "params": {"n_components": 5},
         "depends_on": ["impute"], "timeout": 60}
      ],
      "feature_options": {"n_jobs": 2, "memory": "cache/", "memory_limit": "1G",
                          "failure_strategy": "continue", "timeout": 600},
      "model": {"component": "LogisticRegression", "params": {"C": 0.5}},   # null: by target
      "options": {"scoring": "accuracy", "validation": 0.2, "random_state": 0}
    }

:func:`validate_config` checks all of it before any fit and reports every problem at once,
each named by its path (``features[1].params.n_componets``), with the valid names and the
closest match; parameter types are checked with scikit-learn's own parameter constraints.
:func:`dry_run` (``pipeline.validate(X_sample)``) fits and predicts on a few rows to catch shape
and type errors in seconds before a long fit.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import re
import time

import numpy as np
from sklearn.base import clone
from sklearn.utils import Bunch

from ._schema import EXTRA_COLUMNS
from .base import close_match_hint
from .orchestration import (PipelineGraphError, check_failure_strategy, check_n_jobs,
                            check_timeout, plan_graph)
from .stage import PipelineStage
from .toolbox import MLToolbox

__all__ = ["ConfigError", "DryRunError", "validate_config", "from_config", "to_config",
           "dry_run", "TOP_LEVEL_KEYS", "STAGE_KEYS"]

TOP_LEVEL_KEYS = ("name", "features", "feature_options", "model", "options")
STAGE_KEYS = ("name", "component", "params", "depends_on", "timeout")
MODEL_KEYS = ("component", "params", "timeout")
FEATURE_OPTIONS = ("n_jobs", "memory", "memory_limit", "failure_strategy", "timeout")
OPTIONS = ("scoring", "validation", "epochs", "batch_size", "shuffle", "random_state",
           "fast_inference", "extra_columns", "verbose")
_OPTION_TYPES = {"scoring": (str, list, type(None)), "validation": (float, type(None)),
                 "epochs": (int, type(None)), "batch_size": (int, type(None)),
                 "shuffle": (bool,), "random_state": (int, type(None)),
                 "fast_inference": (bool,), "extra_columns": (str,), "verbose": (int, bool)}


class ConfigError(ValueError, TypeError):
    """A config is invalid. Lists every problem, each named by its path in the config.

    Subclasses both ``ValueError`` and ``TypeError`` (as scikit-learn's
    ``InvalidParameterError`` does), so either ``except`` catches it.

    Parameters
    ----------
    problems : iterable of str
        One message per problem, each starting with the path of the field.
    source : str, default="config"
        What the message names as the config (a file path, ``"config"``).

    Attributes
    ----------
    problems : list of str
        One message per problem, each starting with the path of the field.
    """

    def __init__(self, problems, source="config"):
        self.problems = list(problems)
        head = f"{source}: {len(self.problems)} problem(s) found before anything was fitted:"
        super().__init__(head + "\n" + "\n".join(f"  - {p}" for p in self.problems))


class DryRunError(ValueError):
    """The dry run (:func:`dry_run`) failed; the stage's own error is the ``__cause__``."""


# -- reading ------------------------------------------------------------------------------------
def _load(config):
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f), f"config file {path!r}"
        except FileNotFoundError:
            raise ConfigError([f"no such config file: {path!r}"]) from None
        except json.JSONDecodeError as error:
            raise ConfigError([f"{path}: not valid JSON: {error}"]) from error
    return config, "config"


def _param_names(factory):
    if hasattr(factory, "_get_param_names"):
        return list(factory._get_param_names())
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None  # takes anything
    return [n for n, p in sig.parameters.items() if p.kind is not p.VAR_POSITIONAL]


def _defaults(factory):
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return {}
    return {n: p.default for n, p in sig.parameters.items() if p.default is not p.empty}


class _Checker:
    """Collects the problems of one config, building what it can on the way."""

    def __init__(self, toolbox):
        self.toolbox = toolbox
        self.problems = []

    def add(self, path, message):
        self.problems.append(f"{path}: {message}")

    def component(self, entry, path, keys):
        """Build the estimator of a stage / model / nested entry; None when it has problems."""
        if not isinstance(entry, dict):
            self.add(path, f"expected a mapping with 'component' and 'params', got "
                           f"{type(entry).__name__}: {entry!r}")
            return None
        for key in entry:
            if key not in keys:
                self.add(f"{path}.{key}", f"unknown key.{close_match_hint(key, keys)} Valid "
                                          f"keys: {list(keys)}")
        if "component" not in entry:
            self.add(path, f"a stage entry needs 'component' (the name of an estimator), got "
                           f"keys {sorted(entry)}")
            return None
        name = entry["component"]
        if not isinstance(name, str):
            self.add(f"{path}.component", f"expected a component name (str), got "
                                          f"{type(name).__name__}: {name!r}")
            return None
        try:
            factory = self.toolbox.resolve(name)
        except KeyError as error:
            known = self.toolbox.available_components()
            self.add(f"{path}.component", f"unknown component {name!r}."
                     f"{close_match_hint(name, known)} Registered components: "
                     f"{sorted(self.toolbox.components)}; any scikit-learn estimator class "
                     "name is also valid.")
            del error
            return None
        params = entry.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            self.add(f"{path}.params", f"expected a mapping of parameter names to values, got "
                                       f"{type(params).__name__}: {params!r}")
            return None
        valid = _param_names(factory)
        defaults = _defaults(factory)
        built, ok = {}, True
        for key, value in params.items():
            if valid is not None and key not in valid:
                self.add(f"{path}.params.{key}", f"{name} has no parameter {key!r}."
                         f"{close_match_hint(key, valid)} Valid parameters: {sorted(valid)}")
                ok = False
                continue
            value = self.value(value, f"{path}.params.{key}")
            if value is _BAD:
                ok = False
                continue
            if isinstance(value, list) and isinstance(defaults.get(key), tuple):
                value = tuple(value)  # JSON has no tuples
            built[key] = value
        if not ok:
            return None
        constraints = getattr(factory, "_parameter_constraints", None)
        if constraints:
            from sklearn.utils._param_validation import (InvalidParameterError,
                                                         validate_parameter_constraints)

            try:
                validate_parameter_constraints(
                    {k: v for k, v in constraints.items() if k in built}, built, name)
            except InvalidParameterError as error:
                bad = re.search(r"The '(\w+)' parameter", str(error))
                self.add(f"{path}.params" + (f".{bad.group(1)}" if bad else ""), str(error))
                return None
        try:
            return factory(**built)
        except Exception as error:  # noqa: BLE001 - reported as a problem of this entry
            self.add(path, f"{name}(**params) failed: {type(error).__name__}: {error}")
            return None

    def value(self, value, path):
        if isinstance(value, dict) and "component" in value:
            est = self.component(value, path, ("component", "params"))
            return _BAD if est is None else est
        if isinstance(value, list):
            out = [self.value(v, f"{path}[{i}]") for i, v in enumerate(value)]
            return _BAD if any(v is _BAD for v in out) else out
        return value


_BAD = object()


def _check_options(checker, options, allowed, path, checks):
    if options is None:
        return {}
    if not isinstance(options, dict):
        checker.add(path, f"expected a mapping, got {type(options).__name__}: {options!r}")
        return {}
    out = {}
    for key, value in options.items():
        if key not in allowed:
            checker.add(f"{path}.{key}", f"unknown option.{close_match_hint(key, allowed)} "
                                         f"Valid options: {list(allowed)}")
            continue
        try:
            checks(key, value, f"{path}.{key}")
        except (TypeError, ValueError) as error:
            checker.add(f"{path}.{key}", str(error).split(": ", 1)[-1])
            continue
        out[key] = value
    return out


def _feature_option(key, value, path):
    if key == "n_jobs":
        check_n_jobs(value, path)
    elif key == "timeout":
        check_timeout(value, path)
    elif key == "failure_strategy":
        check_failure_strategy(value, path)
    elif key == "memory" and value is not None and not isinstance(value, str):
        raise TypeError(f"{path}: memory must be a directory path (str) or null, got "
                        f"{type(value).__name__}: {value!r}.")
    elif key == "memory_limit" and value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, str))):
        raise TypeError(f"{path}: memory_limit must be a number of bytes or a size such as "
                        f"'500M', got {type(value).__name__}: {value!r}.")


def _option(key, value, path):
    types = _OPTION_TYPES[key]
    if key == "validation" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not 0 < value < 1:
            raise ValueError(f"{path}: validation must be a fraction in (0, 1), got {value!r}.")
        return
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise TypeError(f"{path}: expected {names}, got {type(value).__name__}: {value!r}.")
    if key == "extra_columns" and value not in EXTRA_COLUMNS:
        raise ValueError(f"{path}: extra_columns must be one of {list(EXTRA_COLUMNS)}, got {value!r}.")


def validate_config(config, toolbox=None):
    """Check a config; return the parts built from it, or raise :class:`ConfigError`.

    Parameters
    ----------
    config : dict, str or path
        The config, or the path of a JSON file holding it.
    toolbox : MLToolbox, default=None
        Where component names are looked up (registered components first).

    Returns
    -------
    Bunch
        ``name``, ``features`` (list of steps, None or "passthrough"), ``feature_options``,
        ``model`` (estimator, PipelineStage, None or "passthrough"), ``options``.

    Raises
    ------
    ConfigError
        Listing every problem, each named by its path.

    Examples
    --------
    >>> validate_config({"model": {"component": "LogisticRegresion"}})
    Traceback (most recent call last):
    ...
    ml_toolbox.config.ConfigError: config: 1 problem(s) found before anything was fitted:
      - model.component: unknown component 'LogisticRegresion'. Did you mean 'LogisticRegression'? ...
    """
    config, source = _load(config)
    if not isinstance(config, dict):
        raise ConfigError([f"a config must be a mapping (a dict or a JSON object), got "
                           f"{type(config).__name__}: {config!r}"], source)
    toolbox = toolbox if toolbox is not None else MLToolbox()
    checker = _Checker(toolbox)
    for key in config:
        if key not in TOP_LEVEL_KEYS:
            checker.add(key, f"unknown key.{close_match_hint(key, TOP_LEVEL_KEYS)} Valid keys: "
                             f"{list(TOP_LEVEL_KEYS)}")
    name = config.get("name", "unified_pipeline")
    if not isinstance(name, str) or not name:
        checker.add("name", f"expected a non-empty str, got {type(name).__name__}: {name!r}")
    features = config.get("features")
    steps = features
    if isinstance(features, list):
        steps, names = [], []
        for i, entry in enumerate(features):
            path = f"features[{i}]"
            est = checker.component(entry, path, STAGE_KEYS)
            if est is None:
                continue
            stage_name = entry.get("name", type(est).__name__.lower())
            if not isinstance(stage_name, str) or not stage_name or "__" in stage_name:
                checker.add(f"{path}.name", "expected a non-empty str without '__', got "
                                            f"{type(stage_name).__name__}: {stage_name!r}")
                continue
            if stage_name in names:
                checker.add(f"{path}.name", f"two stages are named {stage_name!r}; stage names "
                                            "must be unique")
                continue
            depends_on, timeout = entry.get("depends_on"), entry.get("timeout")
            if depends_on is not None and (not isinstance(depends_on, list) or not all(
                    isinstance(d, str) for d in depends_on)):
                checker.add(f"{path}.depends_on", f"expected a list of stage names, got "
                                                  f"{type(depends_on).__name__}: {depends_on!r}")
                continue
            try:
                check_timeout(timeout, f"{path}.timeout")
            except (TypeError, ValueError) as error:
                checker.add(f"{path}.timeout", str(error).split(": ", 1)[-1])
                continue
            names.append(stage_name)
            if depends_on is None and timeout is None:
                steps.append((stage_name, est))
            else:
                steps.append(PipelineStage(est, name=stage_name, depends_on=depends_on,
                                           timeout=timeout))
        if len(steps) == len(features):
            stages = [s if isinstance(s, PipelineStage) else PipelineStage(s[1], name=s[0])
                      for s in steps]
            try:
                plan_graph(names, stages, "features")
            except (PipelineGraphError, TypeError, ValueError) as error:
                checker.add("features", str(error).split(": ", 1)[-1])
    elif not (features is None or features == "passthrough"):
        checker.add("features", f"expected a list of stage entries, null (the toolbox's default) "
                                f"or 'passthrough', got {type(features).__name__}: {features!r}")
    model = config.get("model")
    if isinstance(model, dict):
        est = checker.component(model, "model", MODEL_KEYS)
        model = est
        if est is not None and config["model"].get("timeout") is not None:
            try:
                check_timeout(config["model"]["timeout"], "model.timeout")
                model = PipelineStage(est, name="model", timeout=config["model"]["timeout"])
            except (TypeError, ValueError) as error:
                checker.add("model.timeout", str(error).split(": ", 1)[-1])
    elif not (model is None or model == "passthrough"):
        checker.add("model", f"expected a component entry, null (chosen by the target) or "
                             f"'passthrough', got {type(model).__name__}: {model!r}")
    feature_options = _check_options(checker, config.get("feature_options"), FEATURE_OPTIONS,
                                     "feature_options", _feature_option)
    if feature_options and not isinstance(features, list):
        checker.add("feature_options", "needs an explicit 'features' list")
    options = _check_options(checker, config.get("options"), OPTIONS, "options", _option)
    if checker.problems:
        raise ConfigError(checker.problems, source)
    return Bunch(name=name, features=steps, feature_options=feature_options, model=model,
                 options=options)


def from_config(config, toolbox=None):
    """Build a :class:`~ml_toolbox.UnifiedMLPipeline` from a config (dict or JSON path), validated.

    Parameters
    ----------
    config : dict, str or path-like
        The config, or the path of a JSON file holding it.
    toolbox : MLToolbox, default=None
        Where component names are looked up (registered components first); None uses a default
        one.

    Returns
    -------
    UnifiedMLPipeline
        The pipeline, not fitted.

    Raises
    ------
    ConfigError
        Every problem found in the config, listed at once.

    Examples
    --------
    >>> pipe = from_config({"features": [{"name": "scale", "component": "StandardScaler"}],
    ...                     "model": {"component": "LogisticRegression", "params": {"C": 0.5}}})
    >>> pipe.get_params()["model"]
    LogisticRegression(C=0.5)
    """
    from .feature import FeaturePipeline
    from .unified import UnifiedMLPipeline

    parts = validate_config(config, toolbox)
    features = parts.features
    if parts.feature_options:
        features = FeaturePipeline(features, **parts.feature_options)
    return UnifiedMLPipeline(toolbox, features=features, model=parts.model, name=parts.name,
                             **parts.options)


# -- writing ------------------------------------------------------------------------------------
def _plain(value, path, toolbox):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and not hasattr(value, "fit"):
        return value.item() if hasattr(value, "item") else value
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{path}[{i}]", toolbox) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{path}.{k}", toolbox) for k, v in value.items()}
    if hasattr(value, "get_params") and not isinstance(value, type):
        return _entry(value, path, toolbox)
    raise ConfigError([f"{path}: {type(value).__name__} value {value!r} cannot be written in a "
                       "config (JSON values and estimators only)"], "to_config")


def _entry(est, path, toolbox):
    name = toolbox.name_of(est)
    if name is None:
        raise ConfigError([f"{path}: {type(est).__module__}.{type(est).__qualname__} is not a "
                           "known component; register it (toolbox.register(name, cls)) and pass "
                           "that toolbox to to_config / from_config"], "to_config")
    defaults = _defaults(type(est))
    params = {}
    for key, value in est.get_params(deep=False).items():
        if key in defaults and _same(defaults[key], value):
            continue
        params[key] = _plain(value, f"{path}.params.{key}", toolbox)
    entry = {"component": name}
    if params:
        entry["params"] = params
    return entry


def _same(a, b):
    if a is b:
        return True
    if hasattr(a, "get_params") or hasattr(b, "get_params"):
        return False
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return False


def to_config(pipeline, toolbox=None):
    """Describe a :class:`~ml_toolbox.UnifiedMLPipeline` as a config.

    Parameters that keep their default value are left out. Plug-ins (monitor, retry, debugger)
    and callbacks are runtime objects, attached in code: they are not part of the config.

    Parameters
    ----------
    pipeline : UnifiedMLPipeline
        The pipeline, fitted or not.
    toolbox : MLToolbox, default=None
        Where component names are looked up (registered components first); None uses the
        pipeline's toolbox, or a default one.

    Returns
    -------
    dict
        A JSON-able config, in the format :func:`from_config` reads.

    Raises
    ------
    ConfigError
        A stage wraps a function or an unregistered class, a parameter holds a value JSON
        cannot hold, or an option holds a value :func:`from_config` would refuse (the config is
        checked by :func:`validate_config` before it is returned or written); the message names it.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import UnifiedMLPipeline
    >>> to_config(UnifiedMLPipeline(features=[("scale", StandardScaler())],
    ...                             model=LogisticRegression(C=0.5)))
    {'name': 'unified_pipeline', 'features': [{'name': 'scale', 'component': 'StandardScaler'}], 'model': {'component': 'LogisticRegression', 'params': {'C': 0.5}}}
    """
    from .feature import FeaturePipeline

    toolbox = toolbox if toolbox is not None else (pipeline.toolbox or MLToolbox())
    config = {"name": pipeline.name}
    features = pipeline.features
    fp = features if isinstance(features, FeaturePipeline) else None
    if fp is not None:
        features = fp.steps
    if features is None or (isinstance(features, str) and features == "passthrough"):
        config["features"] = features
    else:
        if not isinstance(features, (list, tuple)):
            features = [features]
        names, stages = FeaturePipeline(steps=list(features))._templates()
        entries = []
        for i, (name, stage) in enumerate(zip(names, stages)):
            est = stage.estimator
            path = f"features[{i}]"
            if not hasattr(est, "get_params"):
                raise ConfigError([f"{path} ({name!r}): a function or 'passthrough' stage cannot "
                                   "be written in a config; wrap it in a registered "
                                   "transformer class"], "to_config")
            entry = {"name": name, **_entry(est, path, toolbox)}
            if stage.depends_on is not None:
                entry["depends_on"] = ([stage.depends_on] if isinstance(stage.depends_on, str)
                                       else list(stage.depends_on))
            if stage.timeout is not None:
                entry["timeout"] = stage.timeout
            entries.append(entry)
        config["features"] = entries
    if fp is not None:
        opts = {}
        for key in FEATURE_OPTIONS:
            value = getattr(fp, key)
            default = _defaults(FeaturePipeline)[key]
            if value == default:
                continue
            if key == "memory" and hasattr(value, "location"):
                value = value.location
            opts[key] = _plain(value, f"feature_options.{key}", toolbox)
        if opts:
            config["feature_options"] = opts
    model = pipeline.model
    if isinstance(model, PipelineStage):
        entry = _entry(model.estimator, "model", toolbox)
        if model.timeout is not None:
            entry["timeout"] = model.timeout
        config["model"] = entry
    elif model is None or (isinstance(model, str) and model == "passthrough"):
        config["model"] = model
    else:
        config["model"] = _entry(model, "model", toolbox)
    defaults = _defaults(type(pipeline))
    options = {}
    for key in OPTIONS:
        value = getattr(pipeline, key)
        if not _same(defaults.get(key), value):
            options[key] = _plain(value, f"options.{key}", toolbox)
    if pipeline.callbacks is not None:
        raise ConfigError(["options.callbacks: callbacks are objects attached in code; they "
                           "cannot be written in a config"], "to_config")
    if options:
        config["options"] = options
    try:  # what is written must read back: a bad option value is named now, not at from_config
        validate_config(config, toolbox)
    except ConfigError as error:
        raise ConfigError(error.problems, "to_config") from None
    return config


# -- dry run ------------------------------------------------------------------------------------
def _rows(data, rows):
    if data is None:
        return None
    if hasattr(data, "iloc"):
        return data.iloc[rows]
    return np.asarray(data)[rows] if not hasattr(data, "shape") else data[rows]


def sample_rows(X, y, n, random_state=0):
    """Positions of at most ``n`` rows of ``X`` for a dry run, in their original order.

    All rows when there are ``n`` or fewer. Otherwise a seeded random sample, stratified by
    ``y`` when ``y`` holds class labels (:func:`~ml_toolbox.toolbox.infer_task`'s rule): every
    class keeps its share of the rows, and every class at least one row while ``n`` allows -- a
    frame sorted by its target (penguins by species) gives a sample with all its classes, not
    the first class only.
    """
    from sklearn.utils import check_random_state

    from .toolbox import infer_task

    n_total = len(X) if not hasattr(X, "shape") else X.shape[0]
    if n_total <= n:
        return np.arange(n_total)
    rng = check_random_state(random_state)
    labels = None
    if y is not None:
        try:
            if infer_task(y).task == "classification" and len(np.shape(y)) == 1:
                labels = np.asarray(y)
        except (ValueError, TypeError):  # missing or odd labels: the fit says so, clearly
            labels = None
    if labels is None:
        return np.sort(rng.choice(n_total, size=n, replace=False))
    classes, inverse = np.unique(labels.astype(str) if labels.dtype == object else labels,
                                 return_inverse=True)
    groups = [np.flatnonzero(inverse == k) for k in range(len(classes))]
    # one row per class first (as far as n goes, largest classes first), the rest in proportion
    order = sorted(range(len(groups)), key=lambda k: -len(groups[k]))
    take = np.zeros(len(groups), dtype=int)
    for k in order[:n]:
        take[k] = 1
    left = n - take.sum()
    if left > 0:
        room = np.array([len(g) for g in groups]) - take
        share = np.floor(left * room / room.sum()).astype(int)
        take += share
        left -= share.sum()
        for k in sorted(range(len(groups)), key=lambda k: -(room[k] - share[k])):
            if left <= 0:
                break
            if take[k] < len(groups[k]):
                take[k] += 1
                left -= 1
    picked = [rng.choice(g, size=t, replace=False) for g, t in zip(groups, take) if t]
    return np.sort(np.concatenate(picked))


def dry_run(pipeline, X_sample, y_sample=None, *, n_rows=200, clock=time.perf_counter):
    """Fit a copy of ``pipeline`` on ``n_rows`` rows and predict them.

    Shape and type errors surface in seconds, before a long fit. ``pipeline`` itself is not
    changed, and no plug-in, cache or worker pool is involved. The rows are a sample seeded by
    the pipeline's ``random_state`` (0 when None), stratified by ``y`` for class labels
    (:func:`sample_rows`).

    Parameters
    ----------
    pipeline : UnifiedMLPipeline
        The pipeline to try.
    X_sample : array-like of shape (n_samples, n_features) or DataFrame
        Raw input like the real training data.
    y_sample : array-like of shape (n_samples,), default=None
        Its targets.
    n_rows : int, default=200
        How many rows to fit and predict (all of them when there are fewer).
    clock : callable, default=time.perf_counter
        The clock ``duration`` is measured with (tests inject one).

    Returns
    -------
    Bunch
        ``n_rows``, ``duration`` (seconds), ``features_shape``, ``output_shape``, ``stages``.

    Raises
    ------
    DryRunError
        Naming the pipeline, the step (fit / predict) and, in the message, the stage, with the
        stage's own error as ``__cause__``.
    ValueError
        ``n_rows`` is not a positive int.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox import UnifiedMLPipeline
    >>> X, y = load_iris(return_X_y=True, as_frame=True)
    >>> report = dry_run(UnifiedMLPipeline(model=LogisticRegression()), X, y, n_rows=30)
    >>> report.n_rows, report.features_shape, report.output_shape
    (30, (30, 4), (30,))
    """
    from .feature import FeaturePipeline

    if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 1:
        raise ValueError(f"{pipeline.owner}: n_rows must be a positive int, got {n_rows!r}.")
    seed = getattr(pipeline, "random_state", None)
    rows = sample_rows(X_sample, y_sample, n_rows, 0 if seed is None else seed)
    X = _rows(X_sample, rows)
    y = _rows(y_sample, rows)
    trial = clone(pipeline)
    for slot in ("monitor", "retry", "debugger", "tracking"):  # a dry run is not a run to record
        setattr(trial, slot, None)
    if isinstance(trial.features, FeaturePipeline):
        trial.features = copy.copy(trial.features)
        trial.features.set_params(memory=None, n_jobs=None, monitor=None, debugger=None,
                                  retry_handler=None)
    start = clock()
    step = "fit"
    try:
        trial.fit(X, y)
        step = "transform"
        features = trial.transform(X)
        output = features
        if trial.model != "passthrough":
            step = "predict"
            output = trial.predict(X)
    except Exception as error:
        notes = " ".join(getattr(error, "__notes__", []))
        raise DryRunError(
            f"dry run of {pipeline.owner} on {len(X) if hasattr(X, '__len__') else '?'} rows "
            f"failed during {step}: {type(error).__name__}: {error}"
            + (f" {notes}" if notes else "")) from error
    names = list(trial.feature_pipeline.stage_names_)
    return Bunch(n_rows=getattr(X, "shape", (len(X),))[0], duration=clock() - start,
                 features_shape=getattr(features, "shape", None),
                 output_shape=getattr(output, "shape", None), stages=names)
