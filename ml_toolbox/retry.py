"""Retry of failing stage runs, built on tenacity.

A stage that reads a file share, a database or a remote feature source fails now and then; one
hiccup should not throw away an hour of fitting. A :class:`RetryHandler` is the *retry policy* the
execution loop hands every stage run to (``handler.call(attempt, ctx)``): it runs the attempt,
and when it fails with an error that looks transient it waits and runs a clean attempt again.

Three objects:

- :class:`RetryStrategy` -- how long to wait between attempts (immediate, fixed, linear,
  exponential);
- :class:`RetryConfig` -- the settings (an immutable value: how many retries, the delays, which
  errors are retried);
- :class:`RetryHandler` -- runs stage runs under a config and keeps per-stage statistics.

Everything that decides is a tenacity object (``stop_after_attempt``, ``wait_fixed``,
``wait_exponential``, ``wait_random``, ``retry_if_exception_type``) driven by
``tenacity.Retrying``; you may pass your own tenacity ``stop`` / ``wait`` / ``retry`` objects.

Attach it the way the seed does::

    handler = RetryHandler(RetryConfig(max_retries=3))
    pipeline.feature_pipeline.retry_handler = handler
    pipeline.feature_pipeline.enable_retry = True

or per stage: ``PipelineStage(reader, retry=RetryConfig(max_retries=5))``, or opt a stage with
side effects out with ``PipelineStage(writer, retry=False)``.
"""

from __future__ import annotations

import copy as _copy
import dataclasses
import enum
import functools
import inspect
import logging
import math
import numbers
import threading
import time
import types

import tenacity
from tenacity import (
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_fixed,
    wait_incrementing,
    wait_none,
    wait_random,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

__all__ = [
    "NEVER_RETRIED",
    "RetryConfig",
    "RetryConfigError",
    "RetryHandler",
    "RetryStrategy",
    "as_policy",
    "only_library_code",
]

logger = logging.getLogger(__name__)

#: Errors that are never retried, whatever ``retry_on`` says: the user interrupting the
#: program, and programming errors (a retry runs the same code on the same data, so it fails
#: the same way). ``NotFittedError`` is an ``AttributeError`` and so is never retried either.
NEVER_RETRIED = (
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
    TypeError,
    AttributeError,
    NameError,
    AssertionError,
    NotImplementedError,
    ImportError,
    SyntaxError,
)

#: Modes in which a stage updates its fitted state in place rather than fitting a clone.
_IN_PLACE_MODES = frozenset(["partial_fit", "partial_fit_transform"])

_STAT_KEYS = ("runs", "attempts", "retries", "successes", "successes_after_retry", "failures",
              "exhausted", "not_retried", "total_sleep")


class RetryConfigError(ValueError, TypeError):
    """A :class:`RetryConfig` parameter is invalid.

    A ``ValueError`` and a ``TypeError`` (as scikit-learn's ``InvalidParameterError``), so
    either ``except`` catches it. The message names the parameter, shows the value given and
    what is allowed.

    Examples
    --------
    >>> from ml_toolbox.retry import RetryConfig, RetryConfigError
    >>> try:
    ...     RetryConfig(max_retries=-1).validate()
    ... except RetryConfigError as error:
    ...     print(type(error).__name__)
    RetryConfigError
    """


# --------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------
class RetryStrategy(str, enum.Enum):
    """How long to wait before each retry.

    With ``base_delay=b``, ``multiplier=m`` and retry number ``k`` (1 for the first retry):

    ``IMMEDIATE``
        no wait (0 s).
    ``FIXED_INTERVAL``
        ``b`` every time (``tenacity.wait_fixed``).
    ``LINEAR_BACKOFF``
        ``b * k`` (``tenacity.wait_incrementing``).
    ``EXPONENTIAL_BACKOFF``
        ``b * m ** (k - 1)`` (``tenacity.wait_exponential``).

    Every delay is capped at ``max_delay``; ``jitter`` adds a uniform random extra
    (``tenacity.wait_random``), still capped.

    Strings are accepted case-insensitively (``"exponential_backoff"``,
    ``"Exponential-Backoff"``).

    Parameters
    ----------
    value : str or RetryStrategy
        The strategy's name.

    Examples
    --------
    >>> RetryStrategy("EXPONENTIAL_BACKOFF") is RetryStrategy.EXPONENTIAL_BACKOFF
    True
    """

    IMMEDIATE = "immediate"
    FIXED_INTERVAL = "fixed_interval"
    LINEAR_BACKOFF = "linear_backoff"
    EXPONENTIAL_BACKOFF = "exponential_backoff"

    @classmethod
    def _missing_(cls, value):
        if isinstance(value, str):
            key = value.strip().lower().replace("-", "_").replace(" ", "_")
            for member in cls:
                if member.value == key:
                    return member
        return None

    def __str__(self):
        return self.value


# inspect.signature (help(), numpydoc) shows how a strategy is made -- RetryStrategy(value) -- rather
# than Enum's functional API (names, module, qualname, type, start, boundary).
RetryStrategy.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("value", inspect.Parameter.POSITIONAL_OR_KEYWORD)])


_STRATEGY_CHOICES = ", ".join(repr(s.value) for s in RetryStrategy)


# --------------------------------------------------------------------------------------------
# small tenacity strategies of our own (picklable, injectable clock)
# --------------------------------------------------------------------------------------------
class _wait_capped(wait_base):
    """``min(cap, wait(retry_state))``: keeps a jittered delay under ``max_delay``."""

    def __init__(self, wait, cap):
        self.wait = wait
        self.cap = cap

    def __call__(self, retry_state):
        return min(self.cap, self.wait(retry_state))

    def __repr__(self):
        return f"_wait_capped({self.wait!r}, cap={self.cap!r})"


class _stop_after_elapsed(stop_base):
    """Stop when the next attempt would start more than ``max_elapsed`` seconds (by ``clock``)
    after the first one. The handler stamps the first attempt's start on the retry state."""

    def __init__(self, max_elapsed, clock):
        self.max_elapsed = max_elapsed
        self.clock = clock

    def __call__(self, retry_state):
        start = getattr(retry_state, "ml_toolbox_start", None)
        if start is None:
            return False
        elapsed = self.clock() - start + (retry_state.upcoming_sleep or 0.0)
        return elapsed > self.max_elapsed


def _failed_state(attempt_number):
    """A stand-alone tenacity retry state for ``attempt_number`` that failed (for schedules)."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
    state.attempt_number = attempt_number
    state.set_exception((OSError, OSError("schedule"), None))
    state.outcome_timestamp = state.start_time
    return state


# --------------------------------------------------------------------------------------------
# RetryConfig
# --------------------------------------------------------------------------------------------
def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _exception_types(name, value, *, allow_empty):
    """Normalise ``value`` (an exception type or a tuple / list of them) to a tuple."""
    allowed = ("an exception type or a tuple of exception types, e.g. (ConnectionError, "
               "TimeoutError)")
    if isinstance(value, type) and issubclass(value, BaseException):
        return (value,)
    if isinstance(value, (tuple, list)) and (value or allow_empty) and all(
            isinstance(v, type) and issubclass(v, BaseException) for v in value):
        return tuple(value)
    if isinstance(value, (tuple, list)) and not value:
        allowed = "at least one exception type, e.g. (ConnectionError, TimeoutError)"
    raise RetryConfigError(
        f"RetryConfig: invalid {name}={value!r} ({type(value).__name__}); allowed: {allowed}.")


def _invalid(name, value, allowed):
    return RetryConfigError(f"RetryConfig: invalid {name}={value!r}; allowed: {allowed}.")


@dataclasses.dataclass(frozen=True, repr=False)
class RetryConfig:
    """Settings of a retry policy (an immutable value; ``dataclasses.replace`` makes variants).

    The constructor only stores its arguments; :meth:`validate` checks them (a
    :class:`RetryHandler` calls it on first use, i.e. in the first ``fit``).

    Parameters
    ----------
    max_retries : int, default=3
        Retries after the first attempt: a stage runs at most ``max_retries + 1`` times.
    strategy : RetryStrategy or str, default=RetryStrategy.EXPONENTIAL_BACKOFF
        How the delay grows; strings are accepted case-insensitively.
    base_delay : float, default=1.0
        Seconds before the first retry (the step of ``FIXED_INTERVAL`` / ``LINEAR_BACKOFF``).
    max_delay : float or None, default=60.0
        Cap on every delay, jitter included; ``None`` for no cap. Must be ``>= base_delay``.
    multiplier : float, default=2.0
        Growth factor of ``EXPONENTIAL_BACKOFF`` (``>= 1``, so delays never shrink).
    jitter : float or bool, default=0.0
        Up to this many random seconds are added to each delay (``tenacity.wait_random``), so
        that many workers do not retry in lock-step; ``True`` means up to ``base_delay``.
    retry_on : exception type or tuple of them, default=(ConnectionError, TimeoutError, OSError)
        Only errors of these types are retried (both named ones are ``OSError`` subclasses;
        they are listed for the reader).
    give_up_on : exception type or tuple of them, default=(FileNotFoundError, \
IsADirectoryError, NotADirectoryError, PermissionError)
        Never retried even when they match ``retry_on``: an ``OSError`` that will not go away.
    max_elapsed : float or None, default=None
        Seconds (by ``clock``): no attempt starts later than this after the first one.
    copy_input : {"auto", True, False}, default="auto"
        Whether each attempt gets a fresh copy of the stage's input, so an attempt that mutated
        it before failing does not leak into the next one. ``"auto"`` copies only when the stage
        may mutate its input (see :meth:`RetryHandler.call`) and more than one attempt is
        possible; ``True`` always; ``False`` never (you guarantee the stage does not mutate).
    reraise : bool, default=True
        When attempts run out, raise the last attempt's own exception (with a note). ``False``
        raises ``tenacity.RetryError`` instead (its ``__cause__`` is that exception).
    stop : tenacity stop strategy or None, default=None
        Your own tenacity stop condition; replaces ``max_retries``.
    wait : tenacity wait strategy or None, default=None
        Your own tenacity wait; replaces ``strategy``, the delays and ``jitter``.
    retry : tenacity retry strategy or None, default=None
        Your own tenacity retry condition; replaces ``retry_on``. ``give_up_on`` and
        :data:`NEVER_RETRIED` still apply to all three. tenacity's ``retry_if_*`` objects hold
        lambdas and do not pickle: a config that holds one cannot be saved with the pipeline.
    sleep : callable or None, default=None
        ``sleep(seconds)``; ``None`` is ``time.sleep``. Inject ``delays.append`` in tests.
    clock : callable or None, default=None
        Monotonic clock in seconds for ``max_elapsed``; ``None`` is ``time.monotonic``.

    Examples
    --------
    >>> config = RetryConfig(max_retries=4, strategy="exponential_backoff", base_delay=0.5,
    ...                      max_delay=3.0)
    >>> config.delays()
    [0.5, 1.0, 2.0, 3.0]
    >>> RetryConfig(max_retries=-1).validate()
    Traceback (most recent call last):
    ...
    ml_toolbox.retry.RetryConfigError: RetryConfig: invalid max_retries=-1; allowed: an \
integer >= 0 (retries after the first attempt).
    """

    max_retries: int = 3
    strategy: RetryStrategy | str = RetryStrategy.EXPONENTIAL_BACKOFF
    base_delay: float = 1.0
    max_delay: float | None = 60.0
    multiplier: float = 2.0
    jitter: float | bool = 0.0
    retry_on: type | tuple = (ConnectionError, TimeoutError, OSError)
    give_up_on: type | tuple = (FileNotFoundError, IsADirectoryError, NotADirectoryError,
                                PermissionError)
    max_elapsed: float | None = None
    copy_input: str | bool = "auto"
    reraise: bool = True
    stop: object = None
    wait: object = None
    retry: object = None
    sleep: object = None
    clock: object = None

    # -- validation ---------------------------------------------------------------------------
    def validate(self):
        """Check every parameter.

        Returns
        -------
        RetryConfig
            ``self``, so that ``RetryConfig(...).validate()`` can be chained.

        Raises
        ------
        RetryConfigError
            Naming the parameter, the value given and the allowed values.
        """
        self._checked()
        return self

    def _checked(self):
        """Validated, normalised settings (a SimpleNamespace)."""
        mr = self.max_retries
        if isinstance(mr, bool) or not isinstance(mr, numbers.Integral) or mr < 0:
            raise _invalid("max_retries", mr, "an integer >= 0 (retries after the first attempt)")
        try:
            strategy = RetryStrategy(self.strategy)
        except ValueError:
            raise _invalid("strategy", self.strategy,
                           f"one of {_STRATEGY_CHOICES} (case-insensitive) or a RetryStrategy "
                           "member") from None
        base = self.base_delay
        if not _is_real(base) or base < 0:
            raise _invalid("base_delay", base, "a finite number of seconds >= 0")
        cap = self.max_delay
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, numbers.Real)
                                or math.isnan(cap) or cap < base):
            raise _invalid("max_delay", cap,
                           f"a number of seconds >= base_delay ({base!r}), or None for no cap")
        mult = self.multiplier
        if not _is_real(mult) or mult < 1:
            raise _invalid("multiplier", mult, "a finite number >= 1 (delays never shrink)")
        jitter = self.jitter
        if jitter is True:
            jitter = float(base)
        elif jitter is False:
            jitter = 0.0
        elif not _is_real(jitter) or jitter < 0:
            raise _invalid("jitter", jitter,
                           "a finite number of seconds >= 0, or True (up to base_delay)")
        retry_on = _exception_types("retry_on", self.retry_on, allow_empty=False)
        clash = [t for t in retry_on if issubclass(t, NEVER_RETRIED)]
        if clash:
            raise RetryConfigError(
                f"RetryConfig: invalid retry_on={self.retry_on!r}; {clash[0].__name__} is never "
                "retried (programming errors such as TypeError, AttributeError, NameError, "
                "AssertionError, and KeyboardInterrupt / SystemExit always propagate); allowed: "
                "exception types outside NEVER_RETRIED, e.g. (ConnectionError, TimeoutError).")
        give_up_on = _exception_types("give_up_on", self.give_up_on, allow_empty=True)
        me = self.max_elapsed
        if me is not None and (not _is_real(me) or me <= 0):
            raise _invalid("max_elapsed", me, "a finite number of seconds > 0, or None")
        if not (self.copy_input is True or self.copy_input is False
                or (isinstance(self.copy_input, str) and self.copy_input == "auto")):
            raise _invalid("copy_input", self.copy_input, "'auto', True or False")
        if not isinstance(self.reraise, bool):
            raise _invalid("reraise", self.reraise, "True or False")
        for name in ("stop", "wait", "retry", "sleep", "clock"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                what = ("a tenacity strategy object (or any callable taking a "
                        "tenacity.RetryCallState), or None" if name in ("stop", "wait", "retry")
                        else "a callable, or None")
                raise _invalid(name, value, what)
        return types.SimpleNamespace(
            max_retries=int(mr), strategy=strategy, base_delay=float(base),
            max_delay=None if cap is None else float(cap), multiplier=float(mult),
            jitter=float(jitter), retry_on=retry_on, give_up_on=give_up_on,
            max_elapsed=None if me is None else float(me))

    # -- tenacity objects ---------------------------------------------------------------------
    def _build_wait(self, checked):
        if self.wait is not None:
            return self.wait
        s = checked
        inf = math.inf if s.max_delay is None else s.max_delay
        if s.strategy is RetryStrategy.IMMEDIATE:
            wait = wait_none()
        elif s.strategy is RetryStrategy.FIXED_INTERVAL:
            wait = wait_fixed(s.base_delay)
        elif s.strategy is RetryStrategy.LINEAR_BACKOFF:
            wait = wait_incrementing(start=s.base_delay, increment=s.base_delay, max=inf)
        else:
            wait = wait_exponential(multiplier=s.base_delay, exp_base=s.multiplier, max=inf)
        if s.jitter > 0:
            wait = wait + wait_random(0, s.jitter)
            if s.max_delay is not None:
                wait = _wait_capped(wait, s.max_delay)
        return wait

    def delays(self, n=None):
        """Compute the delays (seconds) slept before retries ``1 .. n``.

        Computed by the very tenacity wait object a handler uses; with ``jitter`` each call
        draws new random values.

        Parameters
        ----------
        n : int or None, default=None
            How many retries to compute; None means ``max_retries``.

        Returns
        -------
        list of float
            The ``n`` delays, in seconds, in the order they are slept.

        Raises
        ------
        RetryConfigError
            When a parameter of the config is invalid.

        Examples
        --------
        >>> RetryConfig(strategy="linear_backoff", base_delay=2.0, max_retries=3).delays()
        [2.0, 4.0, 6.0]
        """
        checked = self._checked()
        return _schedule(self._build_wait(checked), checked.max_retries if n is None else n)

    # -- usable wherever a handler is ---------------------------------------------------------
    def call(self, attempt, ctx):
        """Run a stage run through the handler cached on this config (``as_policy(self)``).

        So a config works wherever a handler does: ``UnifiedMLPipeline(retry=RetryConfig())``,
        ``pipe.feature_pipeline.retry_handler = RetryConfig(...)``; its statistics are
        ``as_policy(config).statistics``.

        Parameters
        ----------
        attempt : callable
            Runs the stage once (no arguments) and returns its result; the execution loop
            builds it.
        ctx : ~ml_toolbox.context.StageContext
            The stage run; ``ctx.attempt`` and ``ctx.last_error`` are set before each attempt.

        Returns
        -------
        object
            What the successful attempt returned.
        """
        return as_policy(self).call(attempt, ctx)

    # -- sharing, display ---------------------------------------------------------------------
    def __sklearn_clone__(self):
        # An immutable value: clones of a stage share it, and with it the handler
        # ``as_policy`` caches on it (so statistics land in one place).
        return self

    def __repr__(self):
        changed = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not field.default and value != field.default:
                changed.append(f"{field.name}={value!r}")
        return f"RetryConfig({', '.join(changed)})"

    def __getstate__(self):
        return dict(self.__dict__)

    def __setstate__(self, state):
        for key, value in state.items():
            object.__setattr__(self, key, value)


def _schedule(wait, n):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"invalid n={n!r}; allowed: an integer >= 0 (number of retries)")
    return [float(wait(_failed_state(k))) for k in range(1, int(n) + 1)]


# --------------------------------------------------------------------------------------------
# input copies
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _pandas_copy_on_write():
    import pandas as pd

    if int(pd.__version__.split(".")[0]) >= 3:
        return True
    return bool(pd.options.mode.copy_on_write is True)


def _fresh_copy(X):
    """A copy of ``X`` that an attempt may mutate without touching ``X``.

    numpy arrays keep their memory layout (``order="K"``), so results stay bit for bit; a
    read-only array is not copied (it cannot be mutated in place). pandas objects under
    Copy-on-Write (pandas >= 3) get a shallow copy, which CoW makes independent at no cost;
    older pandas gets a deep copy. scipy sparse matrices, lists and dicts are copied;
    anything else (None, scalars, unknown objects) is passed as is.
    """
    if X is None:
        return None
    module = type(X).__module__
    if module.startswith("numpy"):
        if getattr(X, "flags", None) is not None and not X.flags.writeable:
            return X
        return X.copy(order="K")
    if module.startswith("pandas"):
        return X.copy(deep=not _pandas_copy_on_write())
    if module.startswith("scipy.sparse"):
        return X.copy()
    if isinstance(X, (list, dict, tuple)):
        return _copy.deepcopy(X)
    return X


#: Estimators from these modules are library code: they neither write into their input nor do
#: I/O (ml_toolbox.preprocessing is the toolbox's AutoPreprocessor, a ColumnTransformer inside).
_TRUSTED_MODULES = ("sklearn.", "ml_toolbox.preprocessing")
_FUNCTION_TRANSFORMER = None


def _may_mutate_input(stage):
    """Could running ``stage`` mutate its input in place?

    False only for scikit-learn's own estimators (and compositions of them: Pipeline,
    ColumnTransformer, ...) whose ``copy*`` parameters are all left on, and that hold no
    FunctionTransformer or user function: those validate a copy or only read. Anything else
    (your estimator, a plain function, ``copy=False``) may mutate it.

    An estimator class of your own can declare ``_ml_toolbox_reads_input_only = True`` (its
    code never writes into its input); its parameters are still checked the same way.

    The check walks the estimators' parameters (their public attributes without a trailing
    underscore, as scikit-learn stores them), not ``get_params(deep=True)``: a few
    microseconds instead of tens, as it runs on every stage run.
    """
    return _untrusted(getattr(stage, "estimator", stage), 0)


def only_library_code(stage):
    """Tell whether running ``stage`` executes only scikit-learn's and ml_toolbox's code.

    True for scikit-learn estimators and compositions of them that hold no user estimator,
    ``FunctionTransformer`` or user function. Such a stage does no I/O, so it cannot fail
    transiently: retrying it is pointless, and a pipeline may run it on a path without the
    retry policy (the fast inference plan).

    Parameters
    ----------
    stage : PipelineStage or estimator
        The stage (its ``estimator`` is inspected) or an estimator or function itself.

    Returns
    -------
    bool
        True when no user code (own estimator class, ``FunctionTransformer`` or function) runs.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ml_toolbox import PipelineStage
    >>> only_library_code(PipelineStage(StandardScaler())), only_library_code(PipelineStage(abs))
    (True, False)
    """
    return not _untrusted(getattr(stage, "estimator", stage), 0, copies=False)


def _untrusted(est, depth, copies=True):
    global _FUNCTION_TRANSFORMER
    if est is None or isinstance(est, str):  # None / "passthrough" / "drop"
        return False
    if depth > 8:
        return True
    module = type(est).__module__ or ""
    if not hasattr(est, "get_params") or not (
            module.startswith(_TRUSTED_MODULES)
            or (copies and getattr(type(est), "_ml_toolbox_reads_input_only", False) is True)):
        return True
    if _FUNCTION_TRANSFORMER is None:
        from sklearn.preprocessing import FunctionTransformer

        _FUNCTION_TRANSFORMER = FunctionTransformer
    if isinstance(est, _FUNCTION_TRANSFORMER):
        return True
    for key, value in vars(est).items():
        if key[0] == "_" or key[-1] == "_":
            continue  # private or fitted state, not a parameter
        if copies and value is False and key.startswith("copy"):
            return True
        if _untrusted_value(value, depth, copies):
            return True
    return False


_PLAIN = frozenset([type(None), bool, int, float, str, complex, dict])


def _untrusted_value(value, depth, copies=True):
    if value.__class__ in _PLAIN or isinstance(value, (str, numbers.Number, type)):
        return False
    if isinstance(value, (types.FunctionType, types.MethodType, functools.partial)):
        # scikit-learn's own functions (f_classif, ...) only read; a user's may not
        module = getattr(value, "__module__", None) or ""
        return not module.startswith(_TRUSTED_MODULES)
    if hasattr(value, "get_params"):
        return _untrusted(value, depth + 1, copies)
    if isinstance(value, (list, tuple)):
        return any(_untrusted_value(item, depth + 1, copies) for item in value
                   if isinstance(item, (list, tuple)) or hasattr(item, "get_params")
                   or callable(item))
    return False


# --------------------------------------------------------------------------------------------
# RetryHandler
# --------------------------------------------------------------------------------------------
def _empty_stats():
    return dict.fromkeys(_STAT_KEYS[:-1], 0) | {"total_sleep": 0.0}


class _Built:
    """What a handler builds from its config on first use (not pickled, rebuilt on demand)."""

    __slots__ = ("source", "config", "checked", "retrying", "wait", "retry", "sleep", "clock",
                 "max_attempts", "copy_input")

    def is_for(self, handler):
        """Built from ``handler``'s current config, sleep and clock (by identity)?"""
        config, sleep, clock = self.source
        return config is handler.config and sleep is handler.sleep and clock is handler.clock


class RetryHandler:
    """Runs stage runs under a :class:`RetryConfig`; the retry policy of the execution loop.

    Parameters
    ----------
    config : RetryConfig or None, default=None
        The settings; ``None`` uses ``RetryConfig()``.
    sleep : callable or None, default=None
        Overrides ``config.sleep`` (``time.sleep`` when both are None).
    clock : callable or None, default=None
        Overrides ``config.clock`` (``time.monotonic`` when both are None).

    Attributes
    ----------
    statistics : dict
        Totals and per-stage counts (see :meth:`get_statistics`).

    Notes
    -----
    Shared, not copied: ``clone`` of a pipeline or stage that holds a handler keeps this very
    object (as for plug-ins), so statistics from ``GridSearchCV`` fits land in one place. It is
    thread-safe and picklable (the tenacity objects are rebuilt after unpickling).

    Examples
    --------
    >>> from ml_toolbox.retry import RetryHandler, RetryConfig
    >>> slept = []
    >>> handler = RetryHandler(RetryConfig(max_retries=3, base_delay=0.5), sleep=slept.append)
    >>> handler.schedule()
    [0.5, 1.0, 2.0]
    """

    def __init__(self, config=None, *, sleep=None, clock=None):
        self.config = config
        self.sleep = sleep
        self.clock = clock
        self._lock = threading.Lock()
        self._stats = {}
        self._built = None

    # -- building ---------------------------------------------------------------------------
    def validate(self):
        """Validate the config and build the tenacity objects (otherwise done on first use).

        Returns
        -------
        RetryHandler
            ``self``.

        Raises
        ------
        RetryConfigError
            When a parameter of the config is invalid.
        TypeError
            When ``config`` is neither a :class:`RetryConfig` nor None.
        """
        self._build()
        return self

    def _build(self):
        built = self._built
        config = self.config
        if built is not None and built.is_for(self):
            return built
        if config is None:
            config = RetryConfig()
        elif not isinstance(config, RetryConfig):
            raise TypeError(
                f"RetryHandler: invalid config={self.config!r} ({type(self.config).__name__}); "
                "allowed: a RetryConfig, or None for RetryConfig().")
        checked = config._checked()
        built = _Built()
        built.source = (self.config, self.sleep, self.clock)
        built.config = self.config
        built.checked = checked
        built.sleep = self.sleep or config.sleep or time.sleep
        built.clock = self.clock or config.clock or time.monotonic
        built.wait = config._build_wait(checked)
        if config.stop is not None:
            stop = config.stop
            built.max_attempts = None
        else:
            stop = stop_after_attempt(checked.max_retries + 1)
            built.max_attempts = checked.max_retries + 1
        if checked.max_elapsed is not None:
            stop = stop | _stop_after_elapsed(checked.max_elapsed, built.clock)
        retry = config.retry if config.retry is not None else \
            retry_if_exception_type(checked.retry_on)
        built.retry = retry & retry_if_not_exception_type(checked.give_up_on + NEVER_RETRIED)
        built.copy_input = config.copy_input
        built.retrying = tenacity.Retrying(stop=stop, wait=built.wait, retry=built.retry,
                                           sleep=built.sleep, reraise=config.reraise)
        self._built = built
        return built

    def schedule(self, n=None):
        """Compute the delays (seconds) this handler sleeps before retries ``1 .. n``.

        They come from the very wait object the handler runs with.

        Parameters
        ----------
        n : int or None, default=None
            How many retries to compute; None means the config's ``max_retries``.

        Returns
        -------
        list of float
            The ``n`` delays, in seconds, in the order they are slept.
        """
        built = self._build()
        return _schedule(built.wait, built.checked.max_retries if n is None else n)

    # -- the policy protocol ----------------------------------------------------------------
    def call(self, attempt, ctx):
        """Run ``attempt()`` until it succeeds or the policy gives up.

        Before each attempt, ``ctx.attempt`` (1, 2, ...) and ``ctx.last_error`` (the previous
        attempt's error, None at first) are set. In a fitting mode the loop's ``attempt()``
        clones the stage afresh each time; this handler keeps the *input* clean: when the
        stage may mutate its input (anything but a scikit-learn estimator with its ``copy``
        parameters on) and a retry is possible, each attempt gets its own copy of ``ctx.X``
        / ``ctx.y`` and the original is kept aside (``copy_input`` overrides this). After the
        call ``ctx.X`` / ``ctx.y`` are the original input again. In ``partial_fit`` modes,
        where the fitted stage is updated in place, its state is saved before attempt 1 and put
        back (in place) before every retry, so a half-applied batch is never applied twice.

        Parameters
        ----------
        attempt : callable
            Runs the stage once (no arguments) and returns its result; the execution loop
            builds it.
        ctx : ~ml_toolbox.context.StageContext
            The stage run; ``ctx.attempt`` and ``ctx.last_error`` are set before each attempt.

        Returns
        -------
        object
            What the successful attempt returned.

        Raises
        ------
        BaseException
            The error of the last attempt, the very object raised, with a note (``add_note``)
            naming the stage and the number of attempts; ``tenacity.RetryError`` only with
            ``reraise=False``. Errors outside ``retry_on``, in ``give_up_on`` or in
            :data:`NEVER_RETRIED` propagate at once.
        """
        built = self._built
        if built is None or not built.is_for(self):
            built = self._build()
        X, y = ctx.X, ctx.y
        copy_input = built.copy_input
        if copy_input == "auto":
            copy_input = built.max_attempts != 1 and _may_mutate_input(ctx.stage)
        # partial_fit updates the fitted stage in place (no clone per attempt): keep its state
        # to put back before a retry, so a half-applied batch is not applied twice.
        snapshot = None
        if ctx.mode in _IN_PLACE_MODES and not ctx.fitting and built.max_attempts != 1:
            snapshot = _copy.deepcopy(ctx.stage.__dict__)
        # Attempt 1 runs outside tenacity's loop: when nothing fails (the common case) this
        # costs a few microseconds instead of tenacity's ~15 us of bookkeeping. When it fails,
        # tenacity's Retrying takes over from that outcome and makes every decision.
        started = time.monotonic()
        clock_start = built.clock() if built.checked.max_elapsed is not None else None
        ctx.attempt = 1
        ctx.last_error = None
        if copy_input:
            ctx.X, ctx.y = _fresh_copy(X), _fresh_copy(y)
        try:
            result = attempt()
        except BaseException as exc:  # noqa: BLE001 -- handed to the retry loop below
            first_error = exc
        else:
            ctx.X, ctx.y = X, y
            with self._lock:
                stats = self._stats.get(ctx.stage_name)
                if stats is None:
                    stats = self._stats[ctx.stage_name] = _empty_stats()
                stats["runs"] += 1
                stats["attempts"] += 1
                stats["successes"] += 1
            return result
        return self._retry(attempt, ctx, built, X, y, copy_input, first_error, started,
                           clock_start, snapshot)

    def _retry(self, attempt, ctx, built, X, y, copy_input, first_error, started, clock_start,
               snapshot):
        """Attempt 1 failed with ``first_error``: let tenacity decide and run the others."""
        state = None
        last_error = first_error
        success = False
        error = None
        try:
            for manager in built.retrying:
                state = manager.retry_state
                with manager:
                    n = state.attempt_number
                    if n == 1:  # replay the first attempt's outcome into tenacity's state
                        state.start_time = started
                        state.ml_toolbox_start = clock_start
                        raise first_error
                    logger.warning(
                        "Retrying stage %r of %r (attempt %d%s) after %s: %s; slept %.3g s "
                        "so far", ctx.stage_name, ctx.pipeline_name, n,
                        "" if built.max_attempts is None else f" of {built.max_attempts}",
                        type(last_error).__name__, last_error, state.idle_for)
                    ctx.attempt = n
                    ctx.last_error = last_error
                    if copy_input:
                        ctx.X, ctx.y = _fresh_copy(X), _fresh_copy(y)
                    if snapshot is not None:  # in place: the pipeline holds this very object
                        stage_state = ctx.stage.__dict__
                        stage_state.clear()
                        stage_state.update(_copy.deepcopy(snapshot))
                    try:
                        result = attempt()
                    except BaseException as exc:
                        last_error = exc
                        raise
            success = True
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            ctx.X, ctx.y = X, y
            self._finish(ctx, built, state, success, error)

    def _finish(self, ctx, built, state, success, error):
        n = state.attempt_number if state is not None else 0
        slept = float(state.idle_for) if state is not None else 0.0
        exhausted = not_retried = False
        if error is not None and state is not None:
            if isinstance(error, tenacity.RetryError):
                exhausted = True
            elif state.outcome is not None and state.outcome.failed \
                    and state.outcome.exception() is error:
                exhausted = bool(built.retry(state))
                not_retried = not exhausted
            if exhausted or not_retried:
                self._add_note(ctx, built, error, n, slept, exhausted)
        with self._lock:
            stats = self._stats.get(ctx.stage_name)
            if stats is None:
                stats = self._stats[ctx.stage_name] = _empty_stats()
            stats["runs"] += 1
            stats["attempts"] += n
            stats["retries"] += max(n - 1, 0)
            stats["total_sleep"] += slept
            if success:
                stats["successes"] += 1
                if n > 1:
                    stats["successes_after_retry"] += 1
            else:
                stats["failures"] += 1
                stats["exhausted"] += exhausted
                stats["not_retried"] += not_retried

    def _add_note(self, ctx, built, error, n, slept, exhausted):
        if isinstance(error, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            return
        where = f"stage {ctx.stage_name!r} of {ctx.pipeline_name!r}"
        if exhausted:
            limit = (f"max_retries={built.checked.max_retries}" if built.config is None
                     or built.config.stop is None else "the stop condition")
            if built.checked.max_elapsed is not None:
                limit += f" / max_elapsed={built.checked.max_elapsed:g}s"
            note = (f"Retry: gave up on {where} after {n} attempt{'s' if n != 1 else ''} "
                    f"({limit}; slept {slept:.3g} s); this is the last attempt's error.")
        else:
            name = type(error).__name__
            if isinstance(error, NEVER_RETRIED):
                why = f"{name} is a programming error, never retried"
            elif isinstance(error, built.checked.give_up_on):
                why = f"{name} is in give_up_on"
            elif built.config is not None and built.config.retry is not None:
                why = f"the retry condition declined {name}"
            else:
                kinds = ", ".join(t.__name__ for t in built.checked.retry_on)
                why = f"{name} is not in retry_on ({kinds})"
            note = f"Retry: {where} was not retried after attempt {n}: {why}."
        if note not in getattr(error, "__notes__", ()):
            error.add_note(note)

    # -- statistics -------------------------------------------------------------------------
    @property
    def statistics(self):
        """A snapshot: the totals over all stages, and ``"stages"``: ``{name: counts}``."""
        return self.get_statistics()

    def get_statistics(self, stage=None):
        """Retry statistics, as a new dict.

        Parameters
        ----------
        stage : str or None
            A stage name for that stage's counts; None for the totals plus ``"stages"``.

        Returns
        -------
        dict
            ``runs`` (stage runs handled), ``attempts``, ``retries`` (attempts after the
            first), ``successes``, ``successes_after_retry``, ``failures``, ``exhausted``
            (failures after all attempts), ``not_retried`` (failures on an error that is not
            retried), ``total_sleep`` (seconds). ``runs == successes + failures`` and
            ``retries == attempts - runs``. A stage name used by several pipelines (the
            feature pipeline's and the inference pipeline's ``"preprocessing"``) counts
            together.

        Raises
        ------
        KeyError
            For a stage this handler never ran, listing those it did.
        """
        with self._lock:
            if stage is not None:
                if stage not in self._stats:
                    known = sorted(self._stats)
                    raise KeyError(f"RetryHandler has no statistics for stage {stage!r}; "
                                   f"stages seen: {known}")
                return dict(self._stats[stage])
            total = _empty_stats()
            for counts in self._stats.values():
                for key in _STAT_KEYS:
                    total[key] += counts[key]
            total["stages"] = {name: dict(counts) for name, counts in self._stats.items()}
            return total

    def reset_statistics(self):
        """Forget all statistics."""
        with self._lock:
            self._stats = {}

    # -- sharing, pickling, display ---------------------------------------------------------
    def __sklearn_clone__(self):
        return self

    def __getstate__(self):
        state = self.__dict__.copy()
        with self._lock:
            state["_stats"] = {k: dict(v) for k, v in self._stats.items()}
        del state["_lock"]
        state["_built"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self):
        args = [] if self.config is None else [repr(self.config)]
        if self.sleep is not None:
            args.append(f"sleep={self.sleep!r}")
        if self.clock is not None:
            args.append(f"clock={self.clock!r}")
        return f"RetryHandler({', '.join(args)})"

    def __rich__(self):
        from rich.table import Table

        stats = self.get_statistics()
        stages = stats["stages"]
        table = Table(title="Retry statistics", caption=repr(self.config or RetryConfig()))
        table.add_column("")
        for name in stages:
            table.add_column(name, justify="right")
        table.add_column("total", justify="right", style="bold")
        for key in _STAT_KEYS:
            cells = [counts[key] for counts in stages.values()] + [stats[key]]
            table.add_row(key, *(f"{c:.3g}" if key == "total_sleep" else str(c) for c in cells))
        return table


# --------------------------------------------------------------------------------------------
# the loop's entry point
# --------------------------------------------------------------------------------------------
_as_policy_lock = threading.Lock()


def as_policy(obj):
    """Return the retry policy for a stage's own ``retry`` value.

    The execution loop calls this.

    Parameters
    ----------
    obj : RetryHandler, RetryConfig or policy object
        A handler is returned as is. A config gets a handler built once and cached on that
        config object, so its statistics accumulate across runs and clones
        (``as_policy(config).statistics``). Any other object with a ``call(attempt, ctx)``
        method is a policy already and is returned as is.

    Returns
    -------
    RetryHandler or policy object
        An object with a ``call(attempt, ctx)`` method.

    Raises
    ------
    TypeError
        For anything else, naming the value and what is allowed (``False`` -- no retry -- and
        ``None`` -- the pipeline's handler -- are resolved by the loop before this call).

    Examples
    --------
    >>> config = RetryConfig(max_retries=2)
    >>> as_policy(config) is as_policy(config)
    True
    """
    if isinstance(obj, RetryHandler):
        return obj
    if isinstance(obj, RetryConfig):
        handler = obj.__dict__.get("_handler")
        if handler is not None:
            return handler
        with _as_policy_lock:
            handler = obj.__dict__.get("_handler")
            if handler is None:
                handler = RetryHandler(obj)
                object.__setattr__(obj, "_handler", handler)
        return handler
    if not isinstance(obj, type) and callable(getattr(obj, "call", None)):
        return obj
    raise TypeError(
        f"invalid retry={obj!r} ({type(obj).__name__}); allowed: a RetryHandler, a RetryConfig, "
        "an object with a call(attempt, ctx) method, None (use the pipeline's retry_handler) "
        "or False (never retry this stage).")
