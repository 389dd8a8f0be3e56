"""HTTP serving of a :class:`~ml_toolbox.serving.Router` with Starlette and uvicorn (the ``serve`` extra).

Endpoints: ``POST /predict``, ``POST /predict_proba`` (MLflow's scoring protocol: ``dataframe_split``,
``dataframe_records``, ``instances`` or ``inputs``), ``POST /feedback``, ``GET /health``,
``GET /metadata``, ``GET /metrics`` (Prometheus text format) and ``GET /rollout`` (KPIs and verdict as
JSON, what ``ml-toolbox rollout status`` shows).
"""

import functools
import hmac
import json
import os
import re
from contextlib import asynccontextmanager
from time import perf_counter

import numpy as np
import pandas as pd

from .router import NotReadyError, Router

try:  # the serve extra's JSON codec: parses and writes a one-row request several times faster
    import orjson
except ImportError:  # pragma: no cover - without it, the standard library's json
    orjson = None  # type: ignore[assignment]

__all__ = ["create_app", "serve", "parse_payload", "PayloadError", "app_from_spec"]

#: Largest request body accepted by default (bytes); larger ones answer 413.
MAX_BODY = 1_048_576
_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
#: Predictions over 1 ms in a row before ``offload="auto"`` moves them to a worker thread: on a loaded
#: machine a one-row prediction of 30 us takes over 1 ms now and then (the process paused mid-way), and
#: each thread hop then costs more than the prediction.
_SLOW_RUN = 3
_STAGE_RE = re.compile(r"\[ml_toolbox\] raised by stage '([^']*)'")


class PayloadError(ValueError):
    """A request body that is not one of the accepted input formats.

    The server answers it with status 400 and the message.

    Examples
    --------
    >>> from ml_toolbox.serving import parse_payload
    >>> from ml_toolbox.serving.http import PayloadError
    >>> try:
    ...     parse_payload({"rows": [[1.0]]})
    ... except PayloadError as error:
    ...     print("refused")
    refused
    """


def _columns_of(slot):
    schema = slot.schema if isinstance(slot.schema, dict) else None
    if schema and schema.get("columns"):
        return list(schema["columns"])
    names = getattr(slot.model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def parse_payload(payload, columns=None):
    """Turn a decoded MLflow scoring request into a DataFrame (or an array when no names are known).

    Parameters
    ----------
    payload : dict
        ``{"dataframe_split": {"columns": [...], "data": [[...]]}}``, ``{"dataframe_records": [{...}]}``,
        ``{"instances": [...]}`` or ``{"inputs": ...}`` (rows as lists or dicts, or a dict of columns).
    columns : list of str, optional
        The fitted column names, used to name rows given as plain lists.

    Returns
    -------
    pandas.DataFrame or numpy.ndarray
        The rows: a DataFrame when column names are known, else an array.

    Raises
    ------
    PayloadError
        Naming the accepted formats or what is wrong with the given one.

    Examples
    --------
    >>> parse_payload({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}})
         a    b
    0  1.0  2.0
    >>> parse_payload({"instances": [[1.0, 2.0]]}, columns=["a", "b"]).columns.tolist()
    ['a', 'b']
    """
    if payload.__class__ is dict and len(payload) == 1:  # the usual request: rows of numbers, named
        split = payload.get("dataframe_split")
        if split.__class__ is dict and "index" not in split:
            frame = _split_frame(split.get("data"), split.get("columns", columns))
            if frame is not None:  # (None: the general path below reads it, or says what is wrong)
                return frame
    if not isinstance(payload, dict):
        raise PayloadError(f"The request body must be a JSON object with one of the keys {list(_FORMATS)}; "
                           f"got a JSON {type(payload).__name__}.")
    given = [k for k in _FORMATS if k in payload]
    if len(given) != 1:
        what = f"several ({given})" if given else f"none (keys given: {sorted(payload)})"
        raise PayloadError(f"The request body must hold exactly one of {list(_FORMATS)}; it holds {what}.")
    kind = given[0]
    data = payload[kind]
    try:
        if kind == "dataframe_split":
            if not isinstance(data, dict) or "data" not in data:
                raise PayloadError("'dataframe_split' must be an object with 'columns' and 'data' (a list of rows).")
            rows = data["data"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise PayloadError("'dataframe_split.data' must be a list of rows, each a list of values.")
            return _frame(rows, data.get("columns", columns), data.get("index"))
        if kind == "dataframe_records":
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise PayloadError("'dataframe_records' must be a list of objects, one per row.")
            return pd.DataFrame.from_records(data)
        if isinstance(data, dict):  # inputs/instances given as columns
            return pd.DataFrame({k: (v if isinstance(v, list) else [v]) for k, v in data.items()})
        if not isinstance(data, list):
            raise PayloadError(f"'{kind}' must be a list of rows (or an object of columns).")
        if data and all(isinstance(r, dict) for r in data):
            return pd.DataFrame.from_records(data)
        if data and all(isinstance(r, list) for r in data):
            width = {len(r) for r in data}
            if columns is not None and width == {len(columns)}:
                return _frame(data, columns, None)
            return np.asarray(data)
        if data and columns is not None and len(columns) == 1:  # one feature, rows as scalars
            return _frame([[v] for v in data], columns, None)
        raise PayloadError(f"'{kind}' must be a non-empty list of rows (lists or objects).")
    except PayloadError:
        raise
    except (ValueError, TypeError) as exc:
        raise PayloadError(f"Cannot read '{kind}' as a table: {exc}") from exc


_INDEXES: dict = {}  # tuple of column names -> pd.Index: building an Index of strings costs ~0.1-0.7 ms (Arrow)


def _index(columns):
    if columns is None:
        return None
    try:
        key = tuple(columns)
        index = _INDEXES.get(key)
    except TypeError:  # unhashable names: let pandas say what is wrong
        return columns
    if index is None:
        if len(_INDEXES) > 256:
            _INDEXES.clear()
        index = _INDEXES[key] = pd.Index(list(key))
    return index


_RANGES = [pd.RangeIndex(n) for n in range(65)]  # row indexes of small requests, made once (immutable)


def _frame(rows, columns, index):
    if columns is not None and rows and any(len(r) != len(columns) for r in rows):
        widths = sorted({len(r) for r in rows})
        raise PayloadError(f"rows have {widths} value(s) but {len(columns)} columns are named: {list(columns)}.")
    columns = _index(columns)
    try:
        values = np.array(rows, dtype=np.float64)  # all numbers: one block, as a fitted float frame holds it
    except (ValueError, TypeError):
        return pd.DataFrame(rows, columns=columns, index=index)
    if index is None and isinstance(columns, pd.Index) and values.ndim == 2 and values.shape[1] == len(columns):
        frame = _float_frame(values, columns)
        if frame is not None:
            return frame
    return pd.DataFrame(values, columns=columns, index=index)


def _split_frame(rows, columns):
    """The frame ``_frame(rows, columns, None)`` makes when ``rows`` is a non-empty list of rows of
    numbers as wide as ``columns`` (a list), read at once; None for anything else."""
    if rows.__class__ is not list or not rows or columns.__class__ is not list:
        return None
    width = len(columns)
    for r in rows:
        if r.__class__ is not list or len(r) != width:
            return None
    index = _index(columns)
    if not isinstance(index, pd.Index):
        return None
    try:
        values = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError):
        return None
    return _float_frame(values, index) if values.ndim == 2 else None


def _float_frame(values, columns):
    """``pd.DataFrame(values, columns=columns)`` for a float64 2D array, built straight from its one block
    (half the constructor's cost, which is most of a one-row request's parsing). None when this pandas'
    internals differ; the caller then uses the constructor (a test holds both to the same frame)."""
    n = values.shape[0]
    try:
        block = _new_block(values.T, _BlockPlacement(slice(0, values.shape[1])), ndim=2)
        rows = _RANGES[n] if n < len(_RANGES) else pd.RangeIndex(n)
        # the block is (columns, rows) by construction: pandas' integrity check would only repeat that
        manager = _BlockManager((block,), [columns, rows], verify_integrity=False)
        return pd.DataFrame._from_mgr(manager, axes=None)
    except Exception:  # noqa: BLE001 - any change in pandas' internals: the public constructor
        return None


try:
    from pandas._libs.internals import BlockPlacement as _BlockPlacement
    from pandas.core.internals import BlockManager as _BlockManager
    from pandas.core.internals.blocks import new_block as _new_block
except ImportError:  # pragma: no cover - another pandas: always the public constructor
    def _float_frame(values, columns):  # noqa: F811
        return None


def _stage_of(exc):
    for note in getattr(exc, "__notes__", ()):
        match = _STAGE_RE.search(note)
        if match:
            return match.group(1)
    return None


async def _submit(router, answer):
    router.submit(answer)


def _header(scope, name):
    """The first value of header ``name`` (lower-case bytes, as ASGI gives names) in ``scope``, or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _jsonable(value):
    if value.__class__ is np.ndarray:  # the usual answer, without hasattr's failed lookup
        return value.tolist()
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _loads(body):
    """Decode a JSON body: orjson when installed, the standard library's json for what orjson refuses
    or reads otherwise (``NaN``, ``Infinity``, integers beyond 64 bits, UTF-16 bodies).

    Parameters
    ----------
    body : bytes
        The request body.

    Returns
    -------
    object
        The decoded value.

    Raises
    ------
    ValueError
        The body is not JSON (the standard library's message).

    Examples
    --------
    >>> _loads(b'{"instances": [[1.5, NaN]]}')
    {'instances': [[1.5, nan]]}
    """
    if orjson is not None and not _long_digit_run(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


# Where orjson and json read a body differently, besides what orjson refuses: an integer literal beyond
# 64 bits, which orjson reads as a float and json as an exact int. Such a literal has 19 digits or more
# (every integer of 18 digits fits in 64 bits); a float literal reads the same either way. So a body
# without a run of 19 digits is orjson's to read, whatever it holds (found with one C-level pass over
# the bytes: translate maps every digit to "0", find looks for 19 of them in a row); a body with one
# (or a digit run inside a string) goes to json, which is always right, only slower.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_DIGIT_RUN = b"0" * 19


def _long_digit_run(body):
    """Whether ``body`` holds 19 ASCII digits in a row (see above); True for a ``str`` (json reads it).

    Examples
    --------
    >>> _long_digit_run(b'[9223372036854775807]'), _long_digit_run(b'[922337203685477580]')
    (True, False)
    """
    try:
        return body.translate(_DIGITS_TO_ZERO).find(_DIGIT_RUN) >= 0
    except TypeError:  # str (or a buffer without translate): json reads it
        return True


def _dumps(value):
    """Encode a response body: compact JSON, NaN and infinities as ``null`` (strict JSON)."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:  # a type orjson does not know: json's default below names it
            pass
    return json.dumps(_strict(value), ensure_ascii=False, separators=(",", ":"), default=str).encode()


def _strict(value):
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _json_response(content, status=200, request_id=None, background=None):
    """A JSON response whose headers are written once, as raw bytes (Starlette's ``JSONResponse``
    re-encodes every header through a ``MutableHeaders``: a tenth of a one-row request)."""
    body = _dumps(content)
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    if request_id is not None:
        headers.append((b"x-request-id", request_id.encode()))
    return _raw_json_class()(body, status, headers, background)


@functools.cache
def _raw_json_class():
    """A Starlette ``Response`` given its body and raw headers ready-made (made on first use:
    Starlette is the serve extra)."""
    from starlette.responses import Response

    class RawJSON(Response):
        media_type = "application/json"

        def __init__(self, body, status_code, raw_headers, background=None):
            self.body, self.status_code, self.raw_headers, self.background = body, status_code, raw_headers, background

    return RawJSON


def create_app(router, *, token=None, max_body=MAX_BODY, manage_router=True, offload="auto"):
    """A Starlette application serving ``router``.

    Parameters
    ----------
    router : Router
        The router that answers the requests (see :class:`~ml_toolbox.serving.Router`).
    token : str, optional
        When set, every endpoint requires ``Authorization: Bearer <token>`` (401 otherwise).
    max_body : int, default=MAX_BODY
        Largest request body in bytes; a larger one answers 413.
    manage_router : bool, default=True
        Start the router when the server starts and stop it when the server stops.
    offload : {"auto", True, False}, default="auto"
        Where predictions run. A prediction of a few microseconds is cheapest on the event loop itself;
        a slow one there would stop the server from accepting other requests. ``"auto"`` runs them on
        the loop until three predictions in a row took over 1 ms each (their own time, not a thread
        hop's), then in a worker thread until one takes under 1 ms again; one slow prediction alone is
        most often the machine's scheduler pausing the process, not the model. ``True`` always in a
        worker thread, ``False`` never.

    Returns
    -------
    starlette.applications.Starlette
        The app: ``/predict``, ``/invocations`` (MLflow's scoring protocol), ``/feedback``,
        ``/health``, ``/ready``, ``/status`` and ``/metrics`` (Prometheus).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from starlette.testclient import TestClient
    >>> from ml_toolbox import PipelinePersistence
    >>> store = PipelinePersistence(tempfile.mkdtemp())
    >>> store.save(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "churn")
    1
    >>> store.promote("churn", 1, "production")
    1
    >>> with TestClient(create_app(Router(store, "churn"))) as client:
    ...     client.post("/predict", json={"instances": [[0.9]]}).json()["predictions"]
    [1]
    """
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.middleware import Middleware
    from starlette.routing import Route

    if not isinstance(router, Router):
        raise TypeError(f"create_app: router must be a Router; got {type(router).__name__}.")
    from starlette.concurrency import run_in_threadpool

    if offload not in ("auto", True, False):
        raise ValueError(f"create_app: offload must be 'auto', True or False; got {offload!r}.")
    expected = None if token is None else f"Bearer {token}".encode()
    # consecutive predictions over 1 ms (their own time, not a thread hop's); from _SLOW_RUN on, a thread
    slow = [_SLOW_RUN if offload is True else 0]
    in_flight = [0]

    def timed_predict(X, method, key):
        start = perf_counter()
        try:
            return router.predict(X, method, key, True)
        finally:
            if offload == "auto":  # one under 1 ms: back on the loop at once
                slow[0] = slow[0] + 1 if perf_counter() - start > 0.001 else 0

    def error(status, kind, message, **extra):
        return _json_response(dict({"error": kind, "message": message}, **extra), status)

    def denied(scope):
        if expected is None:
            return None
        if hmac.compare_digest(_header(scope, b"authorization") or b"", expected):
            return None
        return JSONResponse({"error": "Unauthorized", "message": "a valid bearer token is required"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    async def read_json(scope, receive):
        """``(payload, None)``, or ``(None, refusal)``; ``(None, None)`` when the client went away."""
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > max_body:
            return None, error(413, "PayloadTooLarge", f"the body has {length.decode()} bytes; the limit is {max_body}")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_body:
                return None, error(413, "PayloadTooLarge", f"the body exceeds the limit of {max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            return _loads(body), None
        except ValueError as exc:
            return None, error(400, "MalformedJSON", f"the body is not valid JSON: {exc}")

    async def with_body(scope, receive, handler, *args):
        """The token checked first, then the JSON body read and handed to ``handler(payload, *args)``."""
        refusal = denied(scope)
        if refusal is not None:
            return refusal
        payload, refusal = await read_json(scope, receive)
        if payload is None and refusal is None:
            return None  # the client disconnected
        if refusal is not None:
            return refusal
        return await handler(payload, *args)

    def guarded(handler, body=False):
        """A Starlette endpoint: the token checked first, then (``body``) the JSON body read."""

        async def endpoint(request):
            if not body:
                return denied(request.scope) or await handler(request)
            response = await with_body(request.scope, request.receive, handler)
            return response if response is not None else Response(status_code=400)

        return endpoint

    columns_of = [None, None]  # [slot, its column names]: read once per version served

    async def predict_with(payload, method, key=None):
        slot = router._state.champion
        if slot is None:
            return error(503, "NotReady", f"no verified version of {router.name!r} is loaded yet")
        if columns_of[0] is not slot:
            columns_of[:] = [slot, _columns_of(slot)]
        try:
            X = parse_payload(payload, columns_of[1])
        except PayloadError as exc:
            return error(400, "BadInput", str(exc))
        in_flight[0] += 1
        try:
            if slow[0] >= _SLOW_RUN:
                answer = await run_in_threadpool(timed_predict, X, method, key)
            else:
                answer = timed_predict(X, method, key)
        except NotReadyError as exc:
            return error(503, "NotReady", str(exc))
        except (ValueError, TypeError, KeyError) as exc:  # the input check's message, naming the column
            return error(400, type(exc).__name__, str(exc), stage=_stage_of(exc))
        except Exception as exc:  # noqa: BLE001 - a server error: its type and stage, never a traceback
            return error(500, type(exc).__name__, str(exc), stage=_stage_of(exc))
        finally:
            in_flight[0] -= 1
        later = None
        if answer.offpath is not None:  # shadow / agreement work: queued once the response is sent
            later = functools.partial(_submit, router, answer)  # (a coroutine: no thread hop to queue it)
        return _json_response({"predictions": _jsonable(answer.predictions), "version": answer.version,
                               "alias": answer.alias, "request_id": answer.request_id},
                              request_id=answer.request_id, background=later)

    prediction_paths = {"/predict": "predict", "/predict_proba": "predict_proba",
                        "/invocations": "predict"}  # (MLflow's own path, for its clients)

    class Predictions:
        """ASGI middleware answering ``POST`` to the prediction paths itself: a one-row request is
        mostly fixed costs, and Starlette's routing, request object and exception layers were a
        fifth of them. Everything else goes on to Starlette (405 for other methods, and so on)."""

        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            method = prediction_paths.get(scope.get("path")) if scope["type"] == "http" else None
            if method is None or scope["method"] != "POST":
                return await self.app(scope, receive, send)
            key = _header(scope, b"x-request-key")
            response = await with_body(scope, receive, predict_with, method,
                                       None if key is None else key.decode("latin-1"))
            if response is not None:
                await response(scope, receive, send)

    async def feedback(payload):
        if not isinstance(payload, dict) or "request_id" not in payload or "y_true" not in payload:
            return error(400, "BadInput", "feedback needs a JSON object with 'request_id' and 'y_true'")
        try:
            scored = router.feedback(str(payload["request_id"]), payload["y_true"])
        except KeyError:
            return error(404, "UnknownRequest", f"no answered request {payload['request_id']!r} is remembered")
        except (ValueError, TypeError) as exc:
            return error(400, "BadInput", str(exc))
        return JSONResponse({"request_id": payload["request_id"], "versions_scored": scored})

    async def health(request):
        serving = router.serving
        if serving["champion"] is None:
            return JSONResponse({"status": "loading", "failures": router.failures[-5:]}, status_code=503)
        return JSONResponse({"status": "ready", "alias": router.alias, "version": serving["champion"],
                             "challenger": serving["challenger"], "in_flight": in_flight[0]})

    async def metadata(request):
        slot = router._state.champion
        return JSONResponse({
            "name": router.name, "alias": router.alias, "challenger_alias": router.challenger,
            "mode": router.mode, "share": router.share, "serving": router.serving,
            "versions": router.store.list_versions(router.name), "aliases": router.store.aliases(router.name),
            "schema": slot.schema if slot is not None else None,
            "columns": _columns_of(slot) if slot is not None else None,
        })

    registry = _registry(router)

    async def metrics(request):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def rollout(request):
        return Response(json.dumps(router.status(), default=str), media_type="application/json")

    @asynccontextmanager
    async def lifespan(app):
        if manage_router:
            router.start()
        try:
            yield
        finally:
            if manage_router:
                router.stop()

    def predicting(method):  # the same answers through Starlette (Predictions takes them first)
        async def endpoint(request):
            key = request.headers.get("x-request-key")
            response = await with_body(request.scope, request.receive, predict_with, method, key)
            return response if response is not None else Response(status_code=400)

        return endpoint

    gets = {"/health": health, "/metadata": metadata, "/metrics": metrics, "/rollout": rollout}
    routes = [Route("/feedback", guarded(feedback, body=True), methods=["POST"])]
    routes += [Route(path, predicting(method), methods=["POST"]) for path, method in prediction_paths.items()]
    routes += [Route(path, guarded(handler), methods=["GET"]) for path, handler in gets.items()]
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(Predictions)])


def _registry(router):
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class _Collector:
        def collect(self):
            serving = router.serving
            roles = {serving["challenger"]: "challenger", serving["champion"]: "champion"}
            labels = ["name", "version", "role"]
            requests = CounterMetricFamily("ml_toolbox_requests", "Requests answered (or shadowed) per version",
                                           labels=labels)
            errors = CounterMetricFamily("ml_toolbox_errors", "Requests that raised, per version", labels=labels)
            latency = GaugeMetricFamily("ml_toolbox_latency_seconds", "Prediction latency percentiles",
                                        labels=labels + ["quantile"])
            agreement = GaugeMetricFamily("ml_toolbox_agreement", "Share of rows agreeing with the champion",
                                          labels=labels)
            quality = GaugeMetricFamily("ml_toolbox_feedback_metric", "Metrics computed from feedback",
                                        labels=labels + ["metric"])
            for version in router.kpis.versions():
                snap = router.kpis.snapshot(version)
                values = [router.name, str(version), roles.get(version, "retired")]
                requests.add_metric(values, snap["requests"])
                errors.add_metric(values, snap["errors"])
                for q in ("50", "95", "99"):
                    if snap[f"p{q}_ms"] is not None:
                        latency.add_metric(values + [f"0.{q}"], snap[f"p{q}_ms"] / 1000.0)
                if snap["agreement"] is not None:
                    agreement.add_metric(values, snap["agreement"])
                for metric in router.kpis.metrics:
                    if snap.get(metric) is not None:
                        quality.add_metric(values + [metric], snap[metric])
            failures = CounterMetricFamily("ml_toolbox_load_failures", "Versions refused at load or verify",
                                           labels=["name"])
            failures.add_metric([router.name], len(router.failures))
            yield from (requests, errors, latency, agreement, quality, failures)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return registry


def app_from_spec(spec):
    """Build the app from a plain spec (what ``ml-toolbox serve`` and its worker processes use).

    Parameters
    ----------
    spec : dict
        ``store`` (a store location) and ``name`` are required; ``alias``, ``challenger``, ``mode``,
        ``share``, ``policy`` (keyword arguments of :class:`~ml_toolbox.serving.RolloutPolicy`),
        ``metrics``, ``poll_interval``, ``token``, ``max_body`` and ``signing_key`` are optional.

    Returns
    -------
    starlette.applications.Starlette
        The app, as :func:`create_app` makes it.

    Examples
    --------
    >>> import tempfile
    >>> from ml_toolbox.serving.http import app_from_spec
    >>> app = app_from_spec({"store": tempfile.mkdtemp(), "name": "churn"})
    >>> type(app).__name__
    'Starlette'
    """
    from ml_toolbox.persistence import PipelinePersistence

    from .policy import RolloutPolicy

    policy = spec.get("policy")
    store = PipelinePersistence(spec["store"], signing_key=spec.get("signing_key"))
    router = Router(store, spec["name"], spec.get("alias") or "production",
                    challenger=spec.get("challenger"), mode=spec.get("mode") or "canary", share=spec.get("share"),
                    policy=RolloutPolicy(**policy) if policy else None,
                    metrics=tuple(spec.get("metrics") or ("accuracy",)),
                    poll_interval=spec.get("poll_interval") or 0.25)
    return create_app(router, token=spec.get("token"), max_body=spec.get("max_body") or MAX_BODY)


def _app_from_env():
    return app_from_spec(json.loads(os.environ["ML_TOOLBOX_SERVE_SPEC"]))


def serve(app_or_spec, *, host="127.0.0.1", port=8000, workers=1, log_level="warning",
          timeout_graceful_shutdown=30):
    """Run the HTTP server until SIGINT/SIGTERM (in-flight requests are drained before exit).

    Parameters
    ----------
    app_or_spec : Starlette app or dict
        An app from :func:`create_app`, or a spec for :func:`app_from_spec` (required for ``workers > 1``:
        each worker process builds its own router, with its own KPIs).
    host : str, default="127.0.0.1"
        The interface to listen on: this machine only unless told otherwise.
    port : int, default=8000
        The TCP port.
    workers : int, default=1
        Worker processes (each with its own router and KPIs); more than one needs a spec.
    log_level : str, default="warning"
        The log level of uvicorn.
    timeout_graceful_shutdown : float, default=30
        Seconds in-flight requests get to finish after SIGINT/SIGTERM.

    Raises
    ------
    ValueError
        When ``workers > 1`` comes with an app instead of a spec, or with a rollout policy.

    Examples
    --------
    Several workers need a spec, so that each builds its own router:

    >>> from ml_toolbox.serving import serve
    >>> serve(object(), workers=2)
    Traceback (most recent call last):
    ...
    ValueError: serve: workers > 1 needs a spec (dict), so that each worker builds its own router.
    """
    import uvicorn

    if workers > 1:
        if not isinstance(app_or_spec, dict):
            raise ValueError("serve: workers > 1 needs a spec (dict), so that each worker builds its own router.")
        if app_or_spec.get("policy"):
            raise ValueError("serve: a rollout policy needs workers=1 (each worker would judge its own share "
                             "of the traffic).")
        os.environ["ML_TOOLBOX_SERVE_SPEC"] = json.dumps(app_or_spec)
        uvicorn.run("ml_toolbox.serving.http:_app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level=log_level, timeout_graceful_shutdown=timeout_graceful_shutdown)
        return
    app = app_from_spec(app_or_spec) if isinstance(app_or_spec, dict) else app_or_spec
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                            timeout_graceful_shutdown=timeout_graceful_shutdown)
    uvicorn.Server(config).run()
