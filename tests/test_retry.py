"""Tests of ml_toolbox.retry: strategies, validation, clean attempts, filters, statistics."""

import io
import logging
import math
import pickle
import re
import threading

import numpy as np
import pandas as pd
import pytest
import tenacity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.compose import make_column_transformer
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ml_toolbox.base import _attempt_function
from ml_toolbox.context import RunContext, StageContext
from ml_toolbox.preprocessing import AutoPreprocessor
from ml_toolbox.retry import (
    NEVER_RETRIED,
    RetryConfig,
    RetryConfigError,
    RetryHandler,
    RetryStrategy,
    as_policy,
    only_library_code,
)


# ---------------------------------------------------------------------------------------------
# stubs: a stage, the loop's attempt(), a fake clock
# ---------------------------------------------------------------------------------------------
class Script:
    """Shared (never cloned) script of what successive calls do: raise or not."""

    def __init__(self, errors=()):
        self.errors = list(errors)
        self.calls = 0
        self.seen = []  # (attempt-visible input copies)

    def __sklearn_clone__(self):
        return self

    def __deepcopy__(self, memo):  # a shared resource, like a connection: never copied
        return self

    def step(self):
        self.calls += 1
        if self.errors:
            error = self.errors.pop(0)
            if error is not None:
                raise error


class ScriptedStage(BaseEstimator):
    """A stage (``run(X, y, mode)``) that mutates its input and half-fits before failing."""

    def __init__(self, script=None, mutate=True):
        self.script = script
        self.mutate = mutate

    def run(self, X, y=None, mode="fit"):
        self.script.seen.append(np.array(X, copy=True))
        if self.mutate:
            X[0, 0] = -1.0  # in place: must not leak into the next attempt
        self.half_fitted_ = True
        self.script.step()
        self.fitted_ = float(np.asarray(X).sum())
        return self.fitted_


def make_ctx(template, X, y=None, *, mode="fit", fitting=True, name="load", pipeline="fp"):
    run = RunContext(None, pipeline, mode, [name])
    return StageContext(run, template, name, 0, mode, fitting, X, y)


def loop_attempt(ctx, plugins=()):
    """The execution loop's own attempt() for this context (no runner, no extra arguments)."""
    return _attempt_function(ctx, plugins, {})


def run_stage(handler, errors, X=None, **ctx_kw):
    script = Script(errors)
    X = np.arange(6.0).reshape(3, 2) if X is None else X
    ctx = make_ctx(ScriptedStage(script), X, **ctx_kw)
    return handler.call(loop_attempt(ctx), ctx), ctx, script


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def handler_for(**kw):
    slept = []
    return RetryHandler(RetryConfig(**kw), sleep=slept.append), slept


# ---------------------------------------------------------------------------------------------
# strategies and schedules
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["exponential_backoff", "EXPONENTIAL_BACKOFF",
                                  "Exponential-Backoff", " exponential backoff "])
def test_strategy_strings_case_insensitive(text):
    assert RetryStrategy(text) is RetryStrategy.EXPONENTIAL_BACKOFF
    assert RetryConfig(strategy=text).validate().delays(3) == [1.0, 2.0, 4.0]


@pytest.mark.parametrize("strategy, expected", [
    (RetryStrategy.IMMEDIATE, [0.0, 0.0, 0.0, 0.0]),
    (RetryStrategy.FIXED_INTERVAL, [0.5, 0.5, 0.5, 0.5]),
    (RetryStrategy.LINEAR_BACKOFF, [0.5, 1.0, 1.5, 2.0]),
    (RetryStrategy.EXPONENTIAL_BACKOFF, [0.5, 1.5, 2.0, 2.0]),
])
def test_schedule_per_strategy(strategy, expected):
    config = RetryConfig(max_retries=4, strategy=strategy, base_delay=0.5, max_delay=2.0,
                         multiplier=3.0)
    assert config.delays() == expected
    handler = RetryHandler(config)
    assert handler.schedule() == expected
    assert handler.schedule(2) == expected[:2]


def test_real_sleeps_follow_the_schedule():
    handler, slept = handler_for(max_retries=3, base_delay=0.25)
    errors = [ConnectionError(f"down {i}") for i in range(10)]
    with pytest.raises(ConnectionError):
        run_stage(handler, errors)
    assert slept == handler.schedule() == [0.25, 0.5, 1.0]


def test_no_cap():
    assert RetryConfig(max_retries=3, max_delay=None, base_delay=10.0,
                       multiplier=10.0).delays() == [10.0, 100.0, 1000.0]


def test_jitter_true_means_up_to_base_delay():
    delays = RetryConfig(max_retries=50, strategy="fixed_interval", base_delay=0.5,
                         max_delay=10.0, jitter=True).delays()
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 1


def test_delays_bad_n():
    with pytest.raises(ValueError, match=re.escape(
            "invalid n=-1; allowed: an integer >= 0 (number of retries)")):
        RetryConfig().delays(-1)


_strategies = st.sampled_from(list(RetryStrategy))


@st.composite
def configs(draw, jitter=None):
    base = draw(st.floats(0.0, 5.0, allow_nan=False))
    capped = draw(st.booleans())
    cap = draw(st.floats(base, base + 100.0)) if capped else None
    return dict(
        max_retries=draw(st.integers(0, 8)),
        strategy=draw(_strategies),
        base_delay=base,
        max_delay=cap,
        multiplier=draw(st.floats(1.0, 4.0)),
        jitter=draw(st.floats(0.0, 3.0)) if jitter is None else jitter,
    )


@settings(max_examples=150, deadline=None)
@given(configs(jitter=0.0))
def test_property_deterministic_schedule(kw):
    delays = RetryHandler(RetryConfig(**kw)).schedule()
    assert len(delays) == kw["max_retries"]
    cap = math.inf if kw["max_delay"] is None else kw["max_delay"]
    assert all(0.0 <= d <= cap for d in delays)
    assert delays == sorted(delays)  # non-decreasing, for every strategy
    if delays and kw["strategy"] is not RetryStrategy.IMMEDIATE:
        assert delays[0] == min(kw["base_delay"], cap)
    if kw["strategy"] is RetryStrategy.EXPONENTIAL_BACKOFF:
        for k, d in enumerate(delays, start=1):
            assert d == pytest.approx(min(kw["base_delay"] * kw["multiplier"] ** (k - 1), cap))


@settings(max_examples=150, deadline=None)
@given(configs())
def test_property_jitter_within_bounds(kw):
    plain = RetryConfig(**(kw | {"jitter": 0.0})).delays()
    jittered = RetryHandler(RetryConfig(**kw)).schedule()
    cap = math.inf if kw["max_delay"] is None else kw["max_delay"]
    for low, d in zip(plain, jittered, strict=True):
        assert low <= d <= min(low + kw["jitter"], cap) + 1e-12


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(configs(), st.integers(0, 12))
def test_property_attempts_and_statistics(kw, failures):
    slept = []
    handler = RetryHandler(RetryConfig(**kw), sleep=slept.append)
    errors = [TimeoutError(f"slow {i}") for i in range(failures)]
    expected_attempts = min(failures, kw["max_retries"]) + 1
    if failures > kw["max_retries"]:
        with pytest.raises(TimeoutError) as info:
            run_stage(handler, errors)
        assert info.value.args == (f"slow {kw['max_retries']}",)  # the last attempt's error
    else:
        result, ctx, script = run_stage(handler, errors)
        assert ctx.attempt == expected_attempts
    stats = handler.get_statistics("load")
    assert stats["attempts"] == expected_attempts <= kw["max_retries"] + 1
    assert stats["retries"] == expected_attempts - 1 == len(slept)
    assert stats["total_sleep"] == pytest.approx(sum(slept))
    plain = RetryConfig(**(kw | {"jitter": 0.0})).delays(len(slept))
    cap = math.inf if kw["max_delay"] is None else kw["max_delay"]
    for low, d in zip(plain, slept, strict=True):
        assert low <= d <= min(low + kw["jitter"], cap) + 1e-12
    assert stats["runs"] == stats["successes"] + stats["failures"] == 1
    assert stats["exhausted"] == (failures > kw["max_retries"])
    assert stats["successes_after_retry"] == (0 < failures <= kw["max_retries"])


# ---------------------------------------------------------------------------------------------
# validation: at first use, naming the parameter and the allowed values
# ---------------------------------------------------------------------------------------------
BAD = [
    (dict(max_retries=-1), "RetryConfig: invalid max_retries=-1; allowed: an integer >= 0 "
                           "(retries after the first attempt)."),
    (dict(max_retries=2.5), "RetryConfig: invalid max_retries=2.5; allowed: an integer >= 0 "
                            "(retries after the first attempt)."),
    (dict(max_retries=True), "RetryConfig: invalid max_retries=True; allowed: an integer >= 0 "
                             "(retries after the first attempt)."),
    (dict(strategy="exponential"),
     "RetryConfig: invalid strategy='exponential'; allowed: one of 'immediate', "
     "'fixed_interval', 'linear_backoff', 'exponential_backoff' (case-insensitive) or a "
     "RetryStrategy member."),
    (dict(strategy=3), "RetryConfig: invalid strategy=3; allowed: one of 'immediate', "
                       "'fixed_interval', 'linear_backoff', 'exponential_backoff' "
                       "(case-insensitive) or a RetryStrategy member."),
    (dict(base_delay=-0.5), "RetryConfig: invalid base_delay=-0.5; allowed: a finite number "
                            "of seconds >= 0."),
    (dict(base_delay=2.0, max_delay=1.0),
     "RetryConfig: invalid max_delay=1.0; allowed: a number of seconds >= base_delay (2.0), "
     "or None for no cap."),
    (dict(multiplier=0.5), "RetryConfig: invalid multiplier=0.5; allowed: a finite number >= 1 "
                           "(delays never shrink)."),
    (dict(jitter=-1.0), "RetryConfig: invalid jitter=-1.0; allowed: a finite number of seconds "
                        ">= 0, or True (up to base_delay)."),
    (dict(retry_on="OSError"),
     "RetryConfig: invalid retry_on='OSError' (str); allowed: an exception type or a tuple of "
     "exception types, e.g. (ConnectionError, TimeoutError)."),
    (dict(retry_on=(OSError, "x")),
     "RetryConfig: invalid retry_on=(<class 'OSError'>, 'x') (tuple); allowed: an exception "
     "type or a tuple of exception types, e.g. (ConnectionError, TimeoutError)."),
    (dict(retry_on=int),
     "RetryConfig: invalid retry_on=<class 'int'> (type); allowed: an exception type or a "
     "tuple of exception types, e.g. (ConnectionError, TimeoutError)."),
    (dict(retry_on=()),
     "RetryConfig: invalid retry_on=() (tuple); allowed: at least one exception type, e.g. "
     "(ConnectionError, TimeoutError)."),
    (dict(retry_on=(OSError, TypeError)),
     "RetryConfig: invalid retry_on=(<class 'OSError'>, <class 'TypeError'>); TypeError is "
     "never retried (programming errors such as TypeError, AttributeError, NameError, "
     "AssertionError, and KeyboardInterrupt / SystemExit always propagate); allowed: exception "
     "types outside NEVER_RETRIED, e.g. (ConnectionError, TimeoutError)."),
    (dict(give_up_on=[1]),
     "RetryConfig: invalid give_up_on=[1] (list); allowed: an exception type or a tuple of "
     "exception types, e.g. (ConnectionError, TimeoutError)."),
    (dict(max_elapsed=0), "RetryConfig: invalid max_elapsed=0; allowed: a finite number of "
                          "seconds > 0, or None."),
    (dict(copy_input="yes"), "RetryConfig: invalid copy_input='yes'; allowed: 'auto', True or "
                             "False."),
    (dict(copy_input=1), "RetryConfig: invalid copy_input=1; allowed: 'auto', True or False."),
    (dict(reraise="no"), "RetryConfig: invalid reraise='no'; allowed: True or False."),
    (dict(stop=5), "RetryConfig: invalid stop=5; allowed: a tenacity strategy object (or any "
                   "callable taking a tenacity.RetryCallState), or None."),
    (dict(sleep="fast"), "RetryConfig: invalid sleep='fast'; allowed: a callable, or None."),
]


@pytest.mark.parametrize("kw, message", BAD, ids=[next(iter(kw)) for kw, _ in BAD])
def test_bad_config_fails_at_first_use_with_exact_message(kw, message):
    config = RetryConfig(**kw)  # the constructor only stores
    handler = RetryHandler(config)  # so does this
    script = Script()
    ctx = make_ctx(ScriptedStage(script), np.zeros((2, 2)))
    with pytest.raises(RetryConfigError, match=re.escape(message)):
        handler.call(loop_attempt(ctx), ctx)
    assert script.calls == 0  # nothing ran
    with pytest.raises(ValueError, match=re.escape(message)):
        config.validate()
    with pytest.raises(TypeError, match=re.escape(message)):
        handler.validate()


def test_handler_config_must_be_a_retry_config():
    with pytest.raises(TypeError, match=re.escape(
            "RetryHandler: invalid config={'max_retries': 3} (dict); allowed: a RetryConfig, "
            "or None for RetryConfig().")):
        RetryHandler({"max_retries": 3}).validate()


def test_retry_on_may_be_broad():
    # Exception / BaseException are allowed: NEVER_RETRIED still propagates at once.
    handler, slept = handler_for(retry_on=BaseException)
    with pytest.raises(KeyboardInterrupt):
        run_stage(handler, [KeyboardInterrupt()])
    assert slept == []


# ---------------------------------------------------------------------------------------------
# what is retried and what is not
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("error", [ConnectionError("reset"), TimeoutError("slow"),
                                   OSError(5, "I/O error")])
def test_transient_errors_are_retried_by_default(error):
    handler, slept = handler_for(max_retries=3)
    result, ctx, script = run_stage(handler, [error])
    assert script.calls == 2 and slept == [1.0]
    assert ctx.attempt == 2 and ctx.last_error is error


@pytest.mark.parametrize("error, why", [
    (ValueError("bad data"), "ValueError is not in retry_on (ConnectionError, TimeoutError, "
                             "OSError)"),
    (RuntimeError("boom"), "RuntimeError is not in retry_on (ConnectionError, TimeoutError, "
                           "OSError)"),
    (FileNotFoundError("no such file"), "FileNotFoundError is in give_up_on"),
    (PermissionError("denied"), "PermissionError is in give_up_on"),
])
def test_non_transient_errors_propagate_at_once_with_a_note(error, why):
    handler, slept = handler_for()
    with pytest.raises(type(error)) as info:
        run_stage(handler, [error])
    assert info.value is error
    assert error.__notes__ == [
        f"Retry: stage 'load' of 'fp' was not retried after attempt 1: {why}."]
    assert slept == []
    stats = handler.get_statistics("load")
    assert (stats["attempts"], stats["failures"], stats["not_retried"], stats["exhausted"]) == \
        (1, 1, 1, 0)


@pytest.mark.parametrize("error", [TypeError("x"), AttributeError("x"), NameError("x"),
                                   AssertionError("x"), NotImplementedError("x")])
def test_programming_errors_never_retried_even_with_retry_on_exception(error):
    handler, slept = handler_for(retry_on=Exception)
    with pytest.raises(type(error)) as info:
        run_stage(handler, [error])
    assert info.value is error and slept == []
    assert error.__notes__ == [
        f"Retry: stage 'load' of 'fp' was not retried after attempt 1: "
        f"{type(error).__name__} is a programming error, never retried."]


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3)])
def test_interrupts_propagate_untouched(error):
    handler, slept = handler_for(retry_on=BaseException)
    with pytest.raises(type(error)) as info:
        run_stage(handler, [error])
    assert info.value is error and slept == []
    assert not hasattr(error, "__notes__")


def test_not_retried_after_some_retries():
    handler, slept = handler_for(max_retries=5)
    error = ValueError("now it is the data")
    with pytest.raises(ValueError):
        run_stage(handler, [ConnectionError("a"), error])
    assert error.__notes__ == ["Retry: stage 'load' of 'fp' was not retried after attempt 2: "
                               "ValueError is not in retry_on (ConnectionError, TimeoutError, "
                               "OSError)."]
    stats = handler.get_statistics("load")
    assert (stats["attempts"], stats["retries"], stats["not_retried"]) == (2, 1, 1)


def test_exhausted_reraises_the_last_original_exception_with_a_note():
    handler, slept = handler_for(max_retries=2, base_delay=0.5)
    errors = [ConnectionError("1"), ConnectionError("2"), ConnectionError("3")]
    with pytest.raises(ConnectionError) as info:
        run_stage(handler, errors)
    assert info.value is errors[2]
    assert type(info.value) is ConnectionError
    assert info.value.__notes__ == [
        "Retry: gave up on stage 'load' of 'fp' after 3 attempts (max_retries=2; slept 1.5 s); "
        "this is the last attempt's error."]
    assert not isinstance(info.value, tenacity.RetryError)


def test_reraise_false_gives_tenacity_retry_error():
    handler, _ = handler_for(max_retries=1, reraise=False)
    errors = [TimeoutError("1"), TimeoutError("2")]
    with pytest.raises(tenacity.RetryError) as info:
        run_stage(handler, errors)
    assert info.value.__cause__ is errors[1]
    assert info.value.last_attempt.exception() is errors[1]
    assert info.value.__notes__[0].startswith("Retry: gave up on stage 'load' of 'fp' after 2 ")
    assert handler.get_statistics("load")["exhausted"] == 1


def test_custom_tenacity_objects():
    slept = []
    config = RetryConfig(stop=tenacity.stop_after_attempt(2), wait=tenacity.wait_fixed(0.25),
                         retry=tenacity.retry_if_exception_type(KeyError))
    handler = RetryHandler(config, sleep=slept.append)
    errors = [KeyError("a"), KeyError("b")]
    with pytest.raises(KeyError) as info:
        run_stage(handler, errors)
    assert info.value is errors[1] and slept == [0.25]
    assert info.value.__notes__ == [
        "Retry: gave up on stage 'load' of 'fp' after 2 attempts (the stop condition; slept "
        "0.25 s); this is the last attempt's error."]
    error = OSError("declined")
    with pytest.raises(OSError):
        run_stage(handler, [error])
    assert error.__notes__ == ["Retry: stage 'load' of 'fp' was not retried after attempt 1: "
                               "the retry condition declined OSError."]


def test_custom_retry_cannot_retry_programming_errors():
    handler, slept = handler_for(retry=tenacity.retry_if_exception_type(TypeError))
    with pytest.raises(TypeError):
        run_stage(handler, [TypeError("bug")])
    assert slept == []


def test_give_up_on_overrides_retry_on():
    handler, slept = handler_for(retry_on=OSError, give_up_on=ConnectionRefusedError)
    with pytest.raises(ConnectionRefusedError):
        run_stage(handler, [ConnectionRefusedError("refused")])
    result, _, _ = run_stage(handler, [ConnectionResetError("reset")])
    assert slept == [1.0]


def test_max_elapsed_with_injected_clock():
    clock = FakeClock()
    config = RetryConfig(max_retries=10, base_delay=1.0, max_elapsed=5.0, clock=clock,
                         sleep=clock.sleep)
    handler = RetryHandler(config)
    with pytest.raises(TimeoutError) as info:
        run_stage(handler, [TimeoutError(str(i)) for i in range(20)])
    # sleeps 1, 2 (t=3); the next sleep of 4 would start attempt 4 at t=7 > 5: stop
    assert clock.slept == [1.0, 2.0]
    assert "after 3 attempts (max_retries=10 / max_elapsed=5s; slept 3 s)" in \
        info.value.__notes__[0]


def test_handler_sleep_and_clock_override_config():
    from_config, from_handler = [], []
    handler_clock = FakeClock()

    def config_clock():
        raise AssertionError("the config's clock was used")

    handler = RetryHandler(RetryConfig(sleep=from_config.append, clock=config_clock,
                                       max_elapsed=10.0),
                           sleep=from_handler.append, clock=handler_clock)
    run_stage(handler, [OSError("x")])
    assert from_handler == [1.0] and from_config == []


# ---------------------------------------------------------------------------------------------
# the policy protocol and clean attempts
# ---------------------------------------------------------------------------------------------
def test_changing_config_or_sleep_after_first_use_takes_effect():
    handler, slept = handler_for(base_delay=1.0)
    run_stage(handler, [OSError("x")])
    handler.config = RetryConfig(base_delay=0.25)
    run_stage(handler, [OSError("x")])
    later = []
    handler.sleep = later.append
    run_stage(handler, [OSError("x")])
    assert slept == [1.0, 0.25] and later == [0.25]


def test_ctx_attempt_and_last_error_before_each_call():
    handler, _ = handler_for(max_retries=3)
    errors = [ConnectionError("a"), TimeoutError("b")]
    script = Script(list(errors))
    ctx = make_ctx(ScriptedStage(script), np.zeros((2, 2)))
    seen = []
    inner = loop_attempt(ctx)

    def attempt():
        seen.append((ctx.attempt, ctx.last_error))
        return inner()

    handler.call(attempt, ctx)
    assert seen == [(1, None), (2, errors[0]), (3, errors[1])]


def test_on_stage_retry_hook_sees_each_retry():
    class Hook:
        def __init__(self):
            self.calls = []

        def on_stage_retry(self, ctx, error):
            self.calls.append((ctx.attempt, error))

    hook = Hook()
    handler, _ = handler_for()
    errors = [OSError("a"), OSError("b")]
    script = Script(list(errors))
    ctx = make_ctx(ScriptedStage(script), np.zeros((2, 2)))
    handler.call(loop_attempt(ctx, [hook]), ctx)
    assert hook.calls == [(2, errors[0]), (3, errors[1])]


def test_mutated_input_does_not_leak_into_next_attempt():
    X = np.arange(6.0).reshape(3, 2)
    pristine = X.copy()
    handler, _ = handler_for(max_retries=3)
    result, ctx, script = run_stage(handler, [OSError("a"), OSError("b")], X=X)
    for seen in script.seen:  # every attempt saw the original values
        np.testing.assert_array_equal(seen, pristine)
    np.testing.assert_array_equal(X, pristine)  # and the caller's data is untouched
    assert ctx.X is X  # the loop's context holds the original again
    # bit for bit what a first-time success gives on the same input
    first_time = ScriptedStage(Script()).run(pristine.copy())
    assert result == first_time


def test_copy_input_false_lets_mutation_leak():
    X = np.arange(6.0).reshape(3, 2)
    handler, _ = handler_for(max_retries=3, copy_input=False)
    result, ctx, script = run_stage(handler, [OSError("a")], X=X)
    assert script.seen[1][0, 0] == -1.0  # the documented cost of opting out
    assert X[0, 0] == -1.0


def test_half_fitted_state_does_not_leak():
    handler, _ = handler_for(max_retries=2)
    result, ctx, script = run_stage(handler, [OSError("a")])
    assert ctx.template.__dict__.get("half_fitted_") is None  # the template never ran
    assert ctx.stage is not ctx.template and ctx.stage.fitted_ == result


class Recorder(BaseEstimator, TransformerMixin):
    """Records the identity of what each attempt receives."""

    def __init__(self, estimator=None):
        self.estimator = estimator

    def run(self, X, y=None, mode="fit"):
        RECEIVED.append(X)
        return X


RECEIVED = []


class ReadsOnly(Recorder):
    _ml_toolbox_reads_input_only = True


@pytest.mark.parametrize("estimator, copied", [
    (StandardScaler(), False),
    (make_pipeline(StandardScaler()), False),
    (StandardScaler(copy=False), True),
    (FunctionTransformer(np.log1p), True),
    (make_pipeline(StandardScaler(), FunctionTransformer(np.log1p)), True),
    (SelectKBest(f_classif, k=1), False),
    (SelectKBest(lambda X, y: (X.sum(0), X.sum(0)), k=1), True),
    (make_column_transformer((StandardScaler(), [0]), remainder="passthrough"), False),
    (make_column_transformer((FunctionTransformer(), [0])), True),
    (np.log1p, True),  # a plain function stage
    (AutoPreprocessor(), False),  # the toolbox's default stage
    (ReadsOnly(StandardScaler()), False),  # declared by its author
    (ReadsOnly(StandardScaler(copy=False)), True),  # ... its parameters still checked
    (ReadsOnly(Recorder()), True),
    (Recorder(), True),  # a user estimator
])
def test_auto_copies_only_when_the_stage_may_mutate(estimator, copied):
    X = np.ones((4, 2))
    RECEIVED.clear()
    handler, _ = handler_for(max_retries=1)
    ctx = make_ctx(Recorder(estimator), X)
    handler.call(loop_attempt(ctx), ctx)
    assert (RECEIVED[0] is not X) is copied
    if copied:
        np.testing.assert_array_equal(RECEIVED[0], X)


def test_no_copy_when_no_retry_is_possible_or_when_disabled():
    X = np.ones((4, 2))
    for kw in (dict(max_retries=0), dict(copy_input=False)):
        RECEIVED.clear()
        handler, _ = handler_for(**kw)
        ctx = make_ctx(Recorder(np.log1p), X)
        handler.call(loop_attempt(ctx), ctx)
        assert RECEIVED[0] is X


def test_copy_input_true_copies_even_sklearn_stages():
    X = np.ones((4, 2))
    RECEIVED.clear()
    handler, _ = handler_for(copy_input=True)
    ctx = make_ctx(Recorder(StandardScaler()), X)
    handler.call(loop_attempt(ctx), ctx)
    assert RECEIVED[0] is not X


def test_copies_keep_layout_and_skip_read_only_arrays():
    RECEIVED.clear()
    handler, _ = handler_for(copy_input=True)
    X = np.asfortranarray(np.arange(12.0).reshape(4, 3))
    ctx = make_ctx(Recorder(), X)
    handler.call(loop_attempt(ctx), ctx)
    assert RECEIVED[0] is not X and RECEIVED[0].flags.f_contiguous
    frozen = np.ones(3)
    frozen.flags.writeable = False
    ctx = make_ctx(Recorder(), frozen)
    handler.call(loop_attempt(ctx), ctx)
    assert RECEIVED[1] is frozen


class FrameMutator(BaseEstimator):
    def __init__(self, script=None):
        self.script = script

    def run(self, X, y=None, mode="fit"):
        self.script.seen.append(X.copy())
        X["a"] = 0.0
        X.iloc[0, 1] = -1.0
        y.iloc[0] = 99
        self.script.step()
        return X.sum().sum() + y.sum()


def test_dataframe_and_series_input_stay_clean():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]})
    y = pd.Series([0, 1, 0])
    X0, y0 = X.copy(), y.copy()
    handler, _ = handler_for()
    script = Script([OSError("share")])
    ctx = make_ctx(FrameMutator(script), X, y)
    result = handler.call(loop_attempt(ctx), ctx)
    for seen in script.seen:
        pd.testing.assert_frame_equal(seen, X0)
    pd.testing.assert_frame_equal(X, X0)
    pd.testing.assert_series_equal(y, y0)
    assert result == FrameMutator(Script()).run(X0.copy(), y0.copy())


# ---------------------------------------------------------------------------------------------
# statistics, threads, logging, display
# ---------------------------------------------------------------------------------------------
def test_statistics_add_up_per_stage():
    handler, slept = handler_for(max_retries=2, base_delay=0.5)
    run_stage(handler, [], name="load")
    run_stage(handler, [OSError("x")], name="load")
    with pytest.raises(OSError):
        run_stage(handler, [OSError("1"), OSError("2"), OSError("3")], name="load")
    with pytest.raises(ValueError):
        run_stage(handler, [ValueError("v")], name="scale")
    assert handler.get_statistics("load") == {
        "runs": 3, "attempts": 1 + 2 + 3, "retries": 0 + 1 + 2, "successes": 2,
        "successes_after_retry": 1, "failures": 1, "exhausted": 1, "not_retried": 0,
        "total_sleep": 0.5 + 0.5 + 1.0}
    total = handler.statistics
    assert total["runs"] == 4 and total["attempts"] == 7 and total["not_retried"] == 1
    assert total["total_sleep"] == sum(slept) == 2.0
    assert set(total["stages"]) == {"load", "scale"}
    with pytest.raises(KeyError, match=re.escape(
            "RetryHandler has no statistics for stage 'lod'; stages seen: ['load', 'scale']")):
        handler.get_statistics("lod")
    handler.reset_statistics()
    assert handler.statistics["runs"] == 0 and handler.statistics["stages"] == {}


def test_statistics_are_thread_safe():
    handler, _ = handler_for(max_retries=3, strategy="immediate")
    n_threads, runs = 8, 25

    def work(i):
        for _ in range(runs):
            run_stage(handler, [OSError("a"), None], name=f"s{i % 2}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = handler.statistics
    assert stats["runs"] == n_threads * runs
    assert stats["attempts"] == 2 * n_threads * runs
    assert stats["successes_after_retry"] == n_threads * runs
    assert stats["stages"]["s0"]["runs"] == stats["stages"]["s1"]["runs"] == 4 * runs


def test_retry_is_logged(caplog):
    handler, _ = handler_for(max_retries=3)
    with caplog.at_level(logging.WARNING, logger="ml_toolbox.retry"):
        run_stage(handler, [ConnectionError("reset by peer")])
    assert caplog.messages == ["Retrying stage 'load' of 'fp' (attempt 2 of 4) after "
                               "ConnectionError: reset by peer; slept 1 s so far"]


def test_rich_table():
    from rich.console import Console

    handler, _ = handler_for(max_retries=2)
    run_stage(handler, [OSError("x")], name="load")
    out = io.StringIO()
    Console(file=out, width=100).print(handler)
    text = out.getvalue()
    assert "Retry statistics" in text and "load" in text and "successes_after_retry" in text


def test_repr_shows_changed_parameters_only():
    assert repr(RetryConfig()) == "RetryConfig()"
    assert repr(RetryConfig(max_retries=5, strategy="fixed_interval")) == \
        "RetryConfig(max_retries=5, strategy='fixed_interval')"
    assert repr(RetryHandler(RetryConfig(max_retries=1))) == \
        "RetryHandler(RetryConfig(max_retries=1))"


# ---------------------------------------------------------------------------------------------
# sharing, caching, pickling
# ---------------------------------------------------------------------------------------------
def test_as_policy():
    handler = RetryHandler()
    assert as_policy(handler) is handler
    config = RetryConfig(max_retries=1)
    cached = as_policy(config)
    assert isinstance(cached, RetryHandler) and cached.config is config
    assert as_policy(config) is cached
    assert as_policy(RetryConfig(max_retries=1)) is not cached  # per config object

    class Custom:
        def call(self, attempt, ctx):
            return attempt()

    custom = Custom()
    assert as_policy(custom) is custom


@pytest.mark.parametrize("value, shown", [
    (True, "True (bool)"), ("exponential", "'exponential' (str)"), (3, "3 (int)"),
    (RetryHandler, "<class 'ml_toolbox.retry.RetryHandler'> (type)")])
def test_as_policy_rejects_other_values(value, shown):
    with pytest.raises(TypeError, match=re.escape(
            f"invalid retry={shown}; allowed: a RetryHandler, a RetryConfig, an object with a "
            "call(attempt, ctx) method, None (use the pipeline's retry_handler) or False "
            "(never retry this stage).")):
        as_policy(value)


def test_config_statistics_accumulate_across_clones():
    config = RetryConfig(max_retries=2, sleep=lambda s: None)
    for _ in range(3):
        assert clone(config) is config  # clones of a stage share its config ...
        ctx = make_ctx(ScriptedStage(Script([OSError("x")])), np.ones((2, 2)))
        as_policy(clone(config)).call(loop_attempt(ctx), ctx)
    stats = as_policy(config).get_statistics("load")  # ... and so its statistics
    assert stats["runs"] == 3 and stats["retries"] == 3


def test_handler_is_shared_by_clone():
    handler = RetryHandler()
    assert clone(handler) is handler
    assert clone(Recorder(handler)).estimator is handler


def test_config_is_immutable():
    config = RetryConfig()
    with pytest.raises(AttributeError):
        config.max_retries = 5


def test_pickle_roundtrip_keeps_statistics_and_works():
    handler = RetryHandler(RetryConfig(max_retries=2, base_delay=0.0))
    run_stage(handler, [OSError("x")])
    copy = pickle.loads(pickle.dumps(handler))
    assert copy.statistics == handler.statistics
    run_stage(copy, [OSError("y")])
    assert copy.get_statistics("load")["runs"] == 2
    assert handler.get_statistics("load")["runs"] == 1
    config = RetryConfig(max_retries=4, strategy="linear_backoff")
    as_policy(config)
    again = pickle.loads(pickle.dumps(config))
    assert again == config and again.delays() == config.delays()
    assert isinstance(as_policy(again), RetryHandler)


def test_never_retried_is_documented_tuple():
    for kind in (TypeError, AttributeError, NameError, AssertionError, KeyboardInterrupt,
                 SystemExit):
        assert kind in NEVER_RETRIED
    assert issubclass(ConnectionError, OSError) and issubclass(TimeoutError, OSError)


# ---------------------------------------------------------------------------------------------
# integration: through the real pipelines and their execution loop
# ---------------------------------------------------------------------------------------------
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from ml_toolbox import (  # noqa: E402
    FeaturePipeline,
    MLToolbox,
    PipelineStage,
    UnifiedMLPipeline,
)
from ml_toolbox.plugins import PipelinePlugin  # noqa: E402


class Flaky(BaseEstimator, TransformerMixin):
    """A transformer that fails where its shared script says, after doing damage first:
    it accumulates into its own fitted state and doubles its input's first column in place."""

    def __init__(self, script=None):
        self.script = script

    def fit(self, X, y=None):
        X[:, 0] *= 2.0  # mutates its input ...
        self.total_ = getattr(self, "total_", 0.0) + float(X.sum())  # ... and half-updates
        self.script.step()  # may raise
        self.n_fits_ = getattr(self, "n_fits_", 0) + 1
        return self

    def transform(self, X):
        X = np.array(X, dtype=float)
        self.script.step()
        return X * 0.5 + self.total_ / 1e4


def data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return X, y


def unified(script, **kw):
    return UnifiedMLPipeline(features=[("flaky", Flaky(script)), ("scale", StandardScaler())],
                             model=LogisticRegression(), **kw)


def test_seed_pattern_3_as_written():
    X, y = data()
    script = Script([ConnectionError("hiccup")])
    pipeline = unified(script)
    retry_handler, slept = handler_for(max_retries=3)
    pipeline.feature_pipeline.retry_handler = retry_handler
    pipeline.feature_pipeline.enable_retry = True

    result = pipeline.execute(X, y, mode="train")

    assert set(result) >= {"model", "metrics", "pipeline"}
    assert slept == [1.0]
    stats = retry_handler.get_statistics("flaky")
    assert (stats["attempts"], stats["retries"], stats["successes_after_retry"]) == (2, 1, 1)
    assert retry_handler.get_statistics("scale")["attempts"] == 1


def test_successful_retry_is_bit_for_bit_a_first_time_success():
    X, y = data()
    clean = unified(Script()).fit(X.copy(), y)
    retried_X = X.copy()
    handler, slept = handler_for()
    retried = unified(Script([OSError("a"), TimeoutError("b")]), retry=handler)
    retried.fit(retried_X, y)
    assert slept == [1.0, 2.0]
    np.testing.assert_array_equal(retried_X, X)  # the caller's data was not touched
    fitted_clean = clean.feature_pipeline.stages_[0].estimator_
    fitted_retried = retried.feature_pipeline.stages_[0].estimator_
    # no state from the failed attempts: fitted once, on the original values
    assert fitted_retried.n_fits_ == fitted_clean.n_fits_ == 1
    assert fitted_retried.total_ == fitted_clean.total_
    np.testing.assert_array_equal(retried.training_pipeline.model_.coef_,
                                  clean.training_pipeline.model_.coef_)
    np.testing.assert_array_equal(retried.predict_proba(X), clean.predict_proba(X))


def test_without_clean_input_the_failed_attempt_would_leak():
    # The control experiment: copy_input=False shows the damage the copies prevent.
    X, y = data()
    clean = unified(Script()).fit(X.copy(), y)
    leaky = unified(Script([OSError("a")]), retry=handler_for(copy_input=False)[0])
    leaky.fit(X.copy(), y)
    assert leaky.feature_pipeline.stages_[0].estimator_.n_fits_ == 1  # the clone is fresh ...
    assert leaky.feature_pipeline.stages_[0].estimator_.total_ != \
        clean.feature_pipeline.stages_[0].estimator_.total_  # ... but its input was doubled twice


def test_retry_in_predict_through_the_inference_pipeline():
    X, y = data()
    script = Script()
    handler, slept = handler_for()
    pipe = unified(script, retry=handler).fit(X, y)
    expected = pipe.predict(X)
    script.errors = [ConnectionResetError("reset")]
    np.testing.assert_array_equal(pipe.predict(X), expected)
    assert slept == [1.0]
    assert handler.get_statistics("flaky")["successes_after_retry"] == 1


def test_unified_retry_is_handed_to_training_too():
    X, y = data()

    class FlakyModel(LogisticRegression):
        def fit(self, X, y, sample_weight=None):
            MODEL_SCRIPT.step()
            return super().fit(X, y, sample_weight)

    MODEL_SCRIPT.errors = [TimeoutError("gpu node slow")]
    handler, slept = handler_for()
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=FlakyModel(),
                             retry=handler).fit(X, y)
    assert slept == [1.0]
    assert handler.get_statistics("model")["retries"] == 1
    assert clone(pipe).retry is handler  # shared by clones


MODEL_SCRIPT = Script()


def test_per_stage_opt_out_and_own_config():
    X, y = data()
    handler, slept = handler_for()
    own_slept = []
    own = RetryConfig(max_retries=5, strategy="fixed_interval", base_delay=0.1,
                      sleep=own_slept.append)
    writer_script = Script([OSError("disk full")])
    pipe = FeaturePipeline([
        PipelineStage(Flaky(Script([OSError("x"), OSError("y")])), "own", retry=own),
        PipelineStage(StandardScaler(), "scale"),
        PipelineStage(Flaky(writer_script), "writer", retry=False),
    ], retry_handler=handler)
    with pytest.raises(OSError, match="disk full") as info:
        pipe.fit_transform(X.copy(), y)
    error = info.value
    assert writer_script.calls == 1  # opted out: run once
    assert own_slept == [0.1, 0.1] and slept == []
    assert as_policy(own).get_statistics("own")["attempts"] == 3
    assert "scale" in handler.statistics["stages"]
    assert "writer" not in handler.statistics["stages"] and "own" not in \
        handler.statistics["stages"]
    assert any("raised by stage 'writer'" in note for note in error.__notes__)


def test_enable_retry_false_switches_the_pipeline_handler_off():
    X, y = data()
    pipe = unified(Script([OSError("x")]))
    handler, slept = handler_for()
    pipe.feature_pipeline.retry_handler = handler
    pipe.feature_pipeline.enable_retry = False
    with pytest.raises(OSError):
        pipe.fit(X, y)
    assert slept == [] and handler.statistics["runs"] == 0


def test_retry_config_works_where_a_handler_does():
    X, y = data()
    slept = []
    config = RetryConfig(sleep=slept.append)
    pipe = unified(Script([OSError("x")]), retry=config).fit(X, y)
    assert slept == [1.0]
    assert as_policy(config).get_statistics("flaky")["successes_after_retry"] == 1
    assert pipe.predict(X).shape == (len(X),)


def test_exhausted_through_the_pipeline_keeps_type_and_notes():
    X, y = data()
    errors = [ConnectionError(f"down {i}") for i in range(3)]
    handler, slept = handler_for(max_retries=2)
    pipe = unified(Script(list(errors)), retry=handler)
    with pytest.raises(ConnectionError) as info:
        pipe.fit(X, y)
    assert info.value is errors[2]
    assert info.value.__notes__[0] == (
        "Retry: gave up on stage 'flaky' of 'unified_pipeline' (its feature_pipeline) after 3 "
        "attempts (max_retries=2; slept 3 s); this is the last attempt's error.")
    assert "raised by stage 'flaky' of pipeline 'unified_pipeline' (its feature_pipeline)" \
        in info.value.__notes__[1]
    assert "stages_" not in pipe.feature_pipeline.__dict__  # nothing half-committed


def test_invalid_config_fails_in_fit_naming_the_parameter():
    X, y = data()
    pipe = unified(Script(), retry=RetryHandler(RetryConfig(base_delay=5, max_delay=1)))
    with pytest.raises(RetryConfigError, match=re.escape(
            "RetryConfig: invalid max_delay=1; allowed: a number of seconds >= base_delay (5), "
            "or None for no cap.")):
        pipe.fit(X, y)


def test_plugins_see_the_retries():
    class Retries(PipelinePlugin):
        def __init__(self):
            self.retries = []
            self.done = []

        def on_stage_retry(self, ctx, error):
            self.retries.append((ctx.stage_name, ctx.attempt, type(error).__name__))

        def after_stage(self, ctx):
            self.done.append((ctx.stage_name, ctx.attempt))

    X, y = data()
    plugin = Retries()
    handler, _ = handler_for()
    pipe = FeaturePipeline([("flaky", Flaky(Script([OSError("x")]))), ("scale", StandardScaler())],
                           monitor=plugin, retry_handler=handler)
    pipe.fit(X, y)
    assert plugin.retries == [("flaky", 2, "OSError")]
    assert plugin.done == [("flaky", 2), ("scale", 1)]


def test_grid_search_shares_the_handler():
    X, y = data()
    handler, _ = handler_for()
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=LogisticRegression(),
                             retry=handler)
    GridSearchCV(pipe, {"model__C": [0.1, 1.0]}, cv=2).fit(X, y)
    assert handler.get_statistics("model")["runs"] >= 5  # 2 x 2 folds + refit


def test_fitted_pipeline_with_handler_pickles():
    X, y = data()
    handler, _ = handler_for()
    pipe = unified(Script(), retry=handler).fit(X, y)
    again = pickle.loads(pickle.dumps(pipe))
    assert again.retry is not handler
    assert again.retry.statistics == handler.statistics
    before = handler.statistics["runs"]
    expected = pipe.predict(X)
    np.testing.assert_array_equal(again.predict(X), expected)
    assert again.retry.statistics["runs"] == handler.statistics["runs"] == before + 3


def test_library_only_pipelines_keep_the_fast_inference_path():
    # Stages that run only scikit-learn code cannot fail transiently: predict stays on the
    # fast plan even with a handler attached (same numbers; the handler is not consulted).
    X, y = data()
    handler, _ = handler_for()
    pipe = UnifiedMLPipeline(features=[("scale", StandardScaler())], model=LogisticRegression(),
                             retry=handler).fit(X, y)
    plain = UnifiedMLPipeline(features=[("scale", StandardScaler())],
                              model=LogisticRegression(), fast_inference=False).fit(X, y)
    before = handler.statistics["runs"]
    np.testing.assert_array_equal(pipe.predict_proba(X), plain.predict_proba(X))
    assert handler.statistics["runs"] == before


def test_toolbox_defaults_with_retry():
    X, y = data()
    frame = pd.DataFrame(X, columns=list("abcd"))
    handler, _ = handler_for()
    pipeline = UnifiedMLPipeline(MLToolbox())
    pipeline.feature_pipeline.retry_handler = handler
    pipeline.feature_pipeline.enable_retry = True
    result = pipeline.execute(frame, y, mode="train")
    assert result["model"] is not None
    assert handler.get_statistics("preprocessing")["attempts"] == 1


def test_example_runs():
    import runpy
    from pathlib import Path
    from unittest import mock

    path = Path(__file__).resolve().parents[1] / "examples" / "retry.py"
    with mock.patch("time.sleep") as fake_sleep:
        module = runpy.run_path(str(path))
        result, handler = module["main"]()
    assert [c.args[0] for c in fake_sleep.call_args_list] == [1.0, 2.0]
    stats = handler.get_statistics("remote")
    assert (stats["attempts"], stats["successes_after_retry"]) == (3, 1)
    assert result["model"] is not None


class FlakySGD(BaseEstimator):
    """partial_fit applies half the batch to its state, then may fail."""

    def __init__(self, script=None):
        self.script = script

    def partial_fit(self, X, y=None, classes=None):
        X = np.asarray(X, dtype=float)
        half = len(X) // 2
        self.sum_ = getattr(self, "sum_", 0.0) + X[:half].sum()  # half applied ...
        self.script.step()  # ... then the connection drops
        self.sum_ += X[half:].sum()
        self.n_batches_ = getattr(self, "n_batches_", 0) + 1
        return self

    def fit(self, X, y=None):
        return self.partial_fit(X, y)

    def predict(self, X):
        return np.full(len(X), self.sum_)


def test_partial_fit_retry_does_not_apply_half_a_batch_twice():
    X, y = data()
    clean = UnifiedMLPipeline(features="passthrough", model=FlakySGD(Script()))
    for batch in (X[:60], X[60:]):
        clean.partial_fit(batch, y[:len(batch)], classes=[0, 1])
    script = Script()
    handler, slept = handler_for()
    pipe = UnifiedMLPipeline(features="passthrough", model=FlakySGD(script), retry=handler)
    pipe.partial_fit(X[:60], y[:60], classes=[0, 1])
    script.errors = [ConnectionError("dropped"), TimeoutError("slow")]
    pipe.partial_fit(X[60:], y[60:], classes=[0, 1])
    assert slept == [1.0, 2.0]
    fitted, expected = pipe.training_pipeline.model_, clean.training_pipeline.model_
    assert fitted.n_batches_ == expected.n_batches_ == 2
    assert fitted.sum_ == expected.sum_  # bit for bit: the half batch was rolled back
    np.testing.assert_array_equal(pipe.predict(X), clean.predict(X))


def test_fresh_copies_of_other_input_types():
    import scipy.sparse as sp

    from ml_toolbox.retry import _fresh_copy

    sparse = sp.csr_matrix(np.eye(3))
    copied = _fresh_copy(sparse)
    copied.data[:] = 0.0
    assert sparse.sum() == 3.0
    nested = [[1, 2], {"a": [3]}]
    copied = _fresh_copy(nested)
    copied[0].append(9)
    copied[1]["a"].append(9)
    assert nested == [[1, 2], {"a": [3]}]
    opaque = object()
    assert _fresh_copy(opaque) is opaque and _fresh_copy(None) is None
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    shallow = _fresh_copy(frame)
    shallow.iloc[0, 0] = 99.0  # Copy-on-Write keeps the original intact
    assert frame.iloc[0, 0] == 1.0


def test_monitor_counts_the_retries_the_handler_counts():
    # Runs once ml_toolbox.monitor (branch `monitor`) is on main; skipped before.
    monitor_module = pytest.importorskip("ml_toolbox.monitor")
    X, y = data()
    monitor = monitor_module.PipelineMonitor()
    handler, _ = handler_for()
    pipeline = unified(Script([ConnectionError("a"), TimeoutError("b")]))
    pipeline.feature_pipeline.monitor = monitor
    pipeline.feature_pipeline.retry_handler = handler
    pipeline.feature_pipeline.enable_retry = True
    pipeline.execute(X, y, mode="train")
    stages = monitor.get_pipeline_statistics("feature_pipeline")["stages"]
    assert stages["flaky"]["retries"] == handler.get_statistics("flaky")["retries"] == 2
    assert stages["scale"]["retries"] == handler.get_statistics("scale")["retries"] == 0


@pytest.mark.parametrize("estimator, expected", [
    (StandardScaler(), True),
    (StandardScaler(copy=False), True),  # mutates its input, but does no I/O
    (make_pipeline(StandardScaler(), LogisticRegression()), True),
    (AutoPreprocessor(), True),
    (FunctionTransformer(np.log1p), False),
    (np.log1p, False),
    (Recorder(), False),
    (ReadsOnly(StandardScaler()), False),  # reading only says nothing of I/O
])
def test_only_library_code(estimator, expected):
    assert only_library_code(PipelineStage(estimator)) is expected


# ---------------------------------------------------------------------------------------------
# retry messages name the user's pipeline (issue 18): every message, every pipeline kind
# ---------------------------------------------------------------------------------------------
class Stepper(BaseEstimator, TransformerMixin):
    """Steps its shared script at fit or at transform (``at``), passing the data through."""

    def __init__(self, script=None, at="fit"):
        self.script = script
        self.at = at

    def fit(self, X, y=None):
        if self.at == "fit":
            self.script.step()
        return self

    def transform(self, X):
        if self.at == "transform":
            self.script.step()
        return np.asarray(X, dtype=float)


def _named(kind, script, at, handler):
    from ml_toolbox import Pipeline

    stage = Stepper(script, at)
    if kind == "Pipeline":
        return Pipeline([("flaky", stage), ("model", LogisticRegression())], retry=handler,
                        name="churn")
    if kind == "UnifiedMLPipeline":
        return UnifiedMLPipeline(features=[("flaky", stage), ("scale", StandardScaler())],
                                 model=LogisticRegression(), retry=handler, name="churn")
    return UnifiedMLPipeline(MLToolbox(), features=[("flaky", stage)], retry=handler,
                             name="churn")  # the toolbox chooses the model


_USERS = re.compile(r"of 'churn'( \(its (feature|training|inference)_pipeline\))?[ .;)]")


@pytest.mark.parametrize("kind", ["Pipeline", "UnifiedMLPipeline", "toolbox"])
@pytest.mark.parametrize("at", ["fit", "transform"])
@pytest.mark.parametrize("outcome", ["recovers", "gives up", "not retried"])
def test_retry_messages_name_the_users_pipeline(kind, at, outcome, caplog):
    X, y = data()
    errors = {"recovers": [ConnectionError("blip")],
              "gives up": [ConnectionError(f"down {i}") for i in range(3)],
              "not retried": [ValueError("bad value")]}[outcome]
    script = Script()
    handler, _ = handler_for(max_retries=2)
    pipe = _named(kind, script, at, handler)
    if at == "transform":
        pipe.fit(X, y)
    script.errors = list(errors)
    call = (lambda: pipe.fit(X, y)) if at == "fit" else (lambda: pipe.predict(X))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ml_toolbox.retry"):
        if outcome == "recovers":
            call()
            notes = []
        else:
            with pytest.raises((ConnectionError, ValueError)) as info:
                call()
            notes = [n for n in info.value.__notes__ if n.startswith("Retry:")]
    logs = [r.getMessage() for r in caplog.records if r.name == "ml_toolbox.retry"]
    expected_logs = {"recovers": 1, "gives up": 2, "not retried": 0}[outcome]
    assert len(logs) == expected_logs, logs
    assert len(notes) == (0 if outcome == "recovers" else 1), notes
    for message in logs + notes:
        assert _USERS.search(message), message
        assert "of 'feature_pipeline'" not in message and "of 'inference_pipeline'" not in message
    if outcome == "gives up":
        assert notes[0].startswith("Retry: gave up on stage 'flaky' of 'churn'")
    if outcome == "not retried":
        assert "was not retried after attempt 1: ValueError is not in retry_on" in notes[0]


def test_retry_messages_of_a_pipeline_used_alone_name_it():
    X, _ = data()
    script = Script([ConnectionError(f"down {i}") for i in range(2)])
    handler, _ = handler_for(max_retries=1)
    pipe = FeaturePipeline([("flaky", Stepper(script))], retry_handler=handler, name="features")
    with pytest.raises(ConnectionError) as info:
        pipe.fit(X)
    assert info.value.__notes__[0].startswith("Retry: gave up on stage 'flaky' of 'features' ")
