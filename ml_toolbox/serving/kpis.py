"""KPIs of the versions a router serves: requests, errors, latency percentiles, agreement with the
champion, and quality metrics computed from feedback (true labels that arrive later).

One :class:`KPIBoard` per router. The request path records with :meth:`KPIBoard.record` (a lock, two
integer additions and one append to a bounded window); percentiles and metrics are computed only
when someone asks (:meth:`KPIBoard.snapshot`), with the monitor's percentile definition
(``numpy.percentile``, linear).
"""

import threading
from collections import OrderedDict, deque

import numpy as np

__all__ = ["KPIBoard", "resolve_metric", "KPI_NAMES"]

#: The KPIs every version has (metrics named in ``KPIBoard(metrics=...)`` come in addition).
KPI_NAMES = ("requests", "errors", "error_rate", "rejected", "p50_ms", "p95_ms", "p99_ms", "agreement", "compared",
             "feedback")


def resolve_metric(name):
    """Return the scikit-learn metric function a name means.

    ``"accuracy"`` -> ``accuracy_score``, ``"f1"`` -> ``f1_score``, ``"mean_absolute_error"`` as
    it is.

    Parameters
    ----------
    name : str
        The metric's name.

    Returns
    -------
    callable
        The function of :mod:`sklearn.metrics`, ``f(y_true, y_pred)``.

    Raises
    ------
    TypeError
        When ``name`` is not a string.
    ValueError
        When :mod:`sklearn.metrics` has no such function.

    Examples
    --------
    >>> resolve_metric("accuracy").__name__
    'accuracy_score'
    >>> resolve_metric("mean_absolute_error").__name__
    'mean_absolute_error'
    """
    from sklearn import metrics

    if not isinstance(name, str):
        raise TypeError(f"A metric is named by a string such as 'accuracy'; got {name!r} of type "
                        f"{type(name).__name__}.")
    for candidate in (f"{name}_score", name):
        func = getattr(metrics, candidate, None)
        if callable(func) and not isinstance(func, type) and not candidate.startswith("_"):
            return func
    raise ValueError(f"Unknown metric {name!r}: expected a function of sklearn.metrics by name, such as "
                     "'accuracy', 'f1', 'balanced_accuracy', 'mean_absolute_error', 'r2'.")


class _VersionStats:
    __slots__ = ("requests", "errors", "rejected", "latencies", "agree", "compared", "y_true", "y_pred")

    def __init__(self, window):
        self.requests = 0
        self.errors = 0
        self.rejected = 0
        self.latencies = deque(maxlen=window)
        self.agree = 0
        self.compared = 0
        self.y_true = []
        self.y_pred = []


class KPIBoard:
    """Per-version KPIs.

    Parameters
    ----------
    metrics : sequence of str
        The scikit-learn metric names computed from feedback (default ``("accuracy",)``).
    window : int
        Latency percentiles are over the last ``window`` successful requests of each version.
    max_pending_feedback : int
        How many answered requests are remembered for a later :meth:`feedback` (oldest forgotten first).

    Examples
    --------
    >>> board = KPIBoard()
    >>> board.record(1, 0.002, ok=True, request_id="r1", prediction=[1])
    >>> board.record(1, 0.004, ok=False)
    >>> board.feedback("r1", [1])
    1
    >>> snap = board.snapshot(1)
    >>> snap["requests"], snap["errors"], snap["error_rate"], snap["accuracy"]
    (2, 1, 0.5, 1.0)
    """

    def __init__(self, metrics=("accuracy",), *, window=10_000, max_pending_feedback=100_000):
        self.metrics = tuple(metrics)
        self._funcs = {name: resolve_metric(name) for name in self.metrics}
        self.window = int(window)
        self.max_pending_feedback = int(max_pending_feedback)
        self._stats = {}
        self._pending = OrderedDict()  # request id -> [(version, prediction), ...]
        self._lock = threading.Lock()

    def _get(self, version):
        stats = self._stats.get(version)
        if stats is None:
            stats = self._stats[version] = _VersionStats(self.window)
        return stats

    def record(self, version, seconds, ok, request_id=None, prediction=None):
        """Count one request answered or failed by a version.

        The prediction is remembered under ``request_id`` for a later :meth:`feedback`.

        Parameters
        ----------
        version : int
            The store version.
        seconds : float
            How long the version took.
        ok : bool
            Whether it answered (False: it raised).
        request_id : str, optional
            The request's id, for feedback.
        prediction : array-like, optional
            Its predictions, for feedback.
        """
        with self._lock:
            stats = self._stats.get(version) or self._get(version)
            stats.requests += 1
            if ok:
                stats.latencies.append(seconds)
            else:
                stats.errors += 1
            if request_id is not None and prediction is not None:
                self._remember(request_id, version, prediction)

    def reject(self, version):
        """Count one request whose input the pipeline's input check refused.

        It is not counted as a request or an error of the version: the caller sent bad input.

        Parameters
        ----------
        version : int
            The store version.
        """
        with self._lock:
            self._get(version).rejected += 1

    def _remember(self, request_id, version, prediction):
        entry = self._pending.get(request_id)
        if entry is None:
            self._pending[request_id] = [(version, prediction)]
            if len(self._pending) > self.max_pending_feedback:
                self._pending.popitem(last=False)
        else:
            entry.append((version, prediction))

    def compare(self, version, reference, candidate, request_id=None):
        """Record how many rows of a version's predictions agree with the champion's.

        The candidate's predictions are also remembered for feedback.

        Parameters
        ----------
        version : int
            The store version.
        reference : array-like
            The champion's predictions.
        candidate : array-like
            The predictions of ``version`` on the same rows.
        request_id : str, optional
            The request's id, for feedback.
        """
        ref = np.asarray(reference)
        cand = np.asarray(candidate)
        if ref.ndim == 2 and ref.shape[1:] == cand.shape[1:] and ref.dtype.kind == "f":
            same = int(np.sum(ref.argmax(axis=1) == cand.argmax(axis=1)))  # probabilities: the same class
        else:
            same = int(np.sum(ref == cand)) if ref.shape == cand.shape else 0
        with self._lock:
            stats = self._get(version)
            stats.agree += same
            stats.compared += len(ref)
            if request_id is not None:
                self._remember(request_id, version, candidate)

    def feedback(self, request_id, y_true):
        """Attach the true labels of an answered request.

        Parameters
        ----------
        request_id : str
            The request's id.
        y_true : array-like
            The true labels, one per row of the request.

        Returns
        -------
        int
            How many versions the labels scored.

        Raises
        ------
        KeyError
            When ``request_id`` is unknown (never answered, or forgotten).
        ValueError
            When ``y_true`` has another length than the request's predictions.
        """
        y_true = list(np.ravel(np.asarray(y_true, dtype=object))) if not np.isscalar(y_true) else [y_true]
        with self._lock:
            entry = self._pending.get(request_id)
            if entry is None:
                raise KeyError(request_id)
            for _, prediction in entry:
                if len(prediction) != len(y_true):
                    raise ValueError(f"feedback for request {request_id!r}: {len(y_true)} label(s) given, but the "
                                     f"request had {len(prediction)} row(s).")
            del self._pending[request_id]
            for version, prediction in entry:
                stats = self._get(version)
                stats.y_true.extend(y_true)
                stats.y_pred.extend(np.asarray(prediction).tolist())
        return len(entry)

    def versions(self):
        """Return the versions with KPIs.

        Returns
        -------
        list of int
            The versions, ascending.
        """
        with self._lock:
            return sorted(self._stats)

    def snapshot(self, version):
        """Return the KPIs of one version.

        Parameters
        ----------
        version : int
            The store version.

        Returns
        -------
        dict
            ``requests``, ``errors``, ``error_rate``, ``rejected``, ``p50_ms`` / ``p95_ms`` / ``p99_ms``
            (latencies in milliseconds), ``agreement``, ``compared``, ``feedback`` and one entry per
            metric; None where nothing was measured.
        """
        with self._lock:
            stats = self._stats.get(version) or _VersionStats(1)
            latencies = np.asarray(stats.latencies, dtype=float)
            requests, errors, agree, compared = stats.requests, stats.errors, stats.agree, stats.compared
            rejected = stats.rejected
            y_true, y_pred = list(stats.y_true), list(stats.y_pred)
        out = {"version": version, "requests": requests, "errors": errors,
               "error_rate": errors / requests if requests else None, "rejected": rejected}
        if len(latencies):
            p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) * 1000.0
            out.update(p50_ms=float(p50), p95_ms=float(p95), p99_ms=float(p99))
        else:
            out.update(p50_ms=None, p95_ms=None, p99_ms=None)
        out["agreement"] = agree / compared if compared else None
        out["compared"] = compared
        out["feedback"] = len(y_true)
        for name, func in self._funcs.items():
            out[name] = None
            if y_true:
                try:
                    out[name] = float(func(y_true, y_pred))
                except (ValueError, TypeError) as exc:  # e.g. f1 on three classes: say why, keep the rest
                    out[f"{name}_error"] = str(exc)
        return out
