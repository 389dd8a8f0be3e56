"""The router: serves the version a store alias points at, follows the alias when anyone moves it,
and runs a challenger alias beside it as a canary or in shadow.

Swaps are atomic: the router's whole routing state (champion and challenger slots) is one immutable
tuple, replaced by a single assignment once a new version is loaded and verified in the background.
A request reads that tuple once, so it is answered entirely by the versions it read; a version that
fails to load or verify is never served (the previous one keeps serving; the failure is reported).
"""

import itertools
import json
import logging
import queue
import random
import secrets
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

from ml_toolbox.exceptions import InputSchemaError

from .kpis import KPIBoard
from .policy import EVIDENCE_MARK, RolloutPolicy, Verdict

__all__ = ["Router", "Answer", "NotReadyError", "METHODS"]

log = logging.getLogger("ml_toolbox.serving")

#: The prediction methods a router serves.
METHODS = ("predict", "predict_proba")
_MODES = ("canary", "shadow")


class NotReadyError(RuntimeError):
    """No verified version is loaded yet for the champion alias.

    The HTTP server answers 503 while it is raised.

    Examples
    --------
    >>> import tempfile
    >>> from ml_toolbox import PipelinePersistence
    >>> from ml_toolbox.serving import NotReadyError, Router
    >>> router = Router(PipelinePersistence(tempfile.mkdtemp()), "churn")
    >>> try:
    ...     router.predict([[0.0]])
    ... except NotReadyError:
    ...     print("not ready")
    not ready
    """


class _Slot(NamedTuple):
    alias: str
    version: int
    model: Any
    schema: Any


class _State(NamedTuple):
    champion: _Slot | None
    challenger: _Slot | None


@dataclass
class Answer:
    """One answered request, as :meth:`Router.predict` returns it.

    Parameters
    ----------
    predictions : array-like
        What the version answered.
    version : int
        The store version that answered.
    alias : str
        The alias that routed to it (the champion's or the challenger's).
    request_id : str
        The id to give :meth:`Router.feedback` when the true labels arrive.
    offpath : object, optional
        With ``predict(..., defer=True)``: the shadow and agreement work, for :meth:`Router.submit`.

    Examples
    --------
    >>> from ml_toolbox.serving import Answer
    >>> answer = Answer(predictions=[1], version=3, alias="production", request_id="r-1")
    >>> answer.version, answer.offpath
    (3, None)
    """

    predictions: Any
    version: int
    alias: str
    request_id: str
    offpath: Any = None  # with predict(..., defer=True): the shadow/agreement work, for submit()


class Router:
    """Serve the version ``alias`` of ``name`` points at, with an optional challenger alias.

    Parameters
    ----------
    store : PipelinePersistence or str
        The store (or its directory).
    name : str
        The name of the model in the store.
    alias : str
        The champion alias (``"production"``).
    challenger : str, optional
        A second alias whose version receives canary or shadow traffic while it differs from the
        champion's version.
    mode : {"canary", "shadow"}
        ``"canary"``: the challenger answers a ``share`` of requests (the same ``key`` always meets the
        same version; without a key the draw is random). ``"shadow"``: the champion answers every
        request, and a ``share`` of them also goes to the challenger off the caller's path; agreement is
        measured.
    share : float, optional
        Between 0 and 1; default 0.1 for a canary, 1.0 (every request) in shadow.
    policy : RolloutPolicy, optional
        Evaluated every ``policy_interval`` seconds in the background; it promotes or rolls back the
        challenger through the store (see :meth:`evaluate`).
    metrics : sequence of str
        The scikit-learn metrics computed from :meth:`feedback` (default ``("accuracy",)``).
    poll_interval : float
        Seconds between two reads of the store's aliases (one small JSON file).
    policy_interval : float
        Seconds between two policy evaluations.
    max_pending : int
        Shadow and agreement work waiting off the caller's path beyond this is dropped (and counted).
    seed : int, optional
        Seed of the random canary draw (tests).
    load_options : dict, optional
        Passed to ``PipelinePersistence.load`` (e.g. ``{"verify": "sha256"}``).

    Attributes
    ----------
    kpis : KPIBoard
        Per-version KPIs.
    failures : list of dict
        Versions that failed to load or verify (alias, version, error, when); never served.
    swaps : list of dict
        Every version swapped in (role, alias, from, to, when).
    decisions : list of dict
        Every policy verdict acted upon or refused.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox import PipelinePersistence
    >>> store = PipelinePersistence(tempfile.mkdtemp())
    >>> store.save(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "churn")
    1
    >>> store.promote("churn", 1, "production")
    1
    >>> with Router(store, "churn") as router:
    ...     answer = router.predict([[0.9]])
    >>> answer.predictions.tolist(), answer.version, answer.alias
    ([1], 1, 'production')
    """

    def __init__(self, store, name, alias="production", *, challenger=None, mode="canary", share=None,
                 policy=None, metrics=("accuracy",), poll_interval=0.25, policy_interval=1.0,
                 max_pending=1000, seed=None, load_options=None):
        from ml_toolbox.persistence import PipelinePersistence

        if mode not in _MODES:
            raise ValueError(f"Router: mode must be one of {_MODES}; got {mode!r}.")
        if share is None:
            share = 0.1 if mode == "canary" else 1.0
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise ValueError(f"Router: share must be a number between 0 and 1; got {share!r}.")
        if challenger is not None and challenger == alias:
            raise ValueError(f"Router: the challenger alias must differ from the champion alias {alias!r}.")
        if policy is not None and not isinstance(policy, RolloutPolicy):
            raise TypeError(f"Router: policy must be a RolloutPolicy; got {type(policy).__name__}.")
        if policy is not None and challenger is None:
            raise ValueError("Router: a policy judges a challenger; give challenger=ALIAS too.")
        for label, value in (("poll_interval", poll_interval), ("policy_interval", policy_interval)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"Router: {label} must be a positive number of seconds; got {value!r}.")
        self.store = PipelinePersistence.from_location(store)
        self.name = name
        self.alias = alias
        self.challenger = challenger
        self.mode = mode
        self.share = float(share)
        self.policy = policy
        self.poll_interval = poll_interval
        self.policy_interval = policy_interval
        self.max_pending = max_pending
        self.load_options = dict(load_options or {})
        self.kpis = KPIBoard(metrics)
        self.failures = []
        self.swaps = []
        self.decisions = deque(maxlen=100)
        self._state = _State(None, None)
        self._models = {}  # version -> (model, schema): loaded and verified
        self._failed = {}  # alias -> version that failed (not retried until the alias moves)
        self._acted = set()
        self._rng = random.Random(seed)
        self._prefix = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._jobs = queue.SimpleQueue()
        self._stop = threading.Event()
        self._refresh_lock = threading.Lock()
        self._threads = []
        self.dropped = 0

    def __repr__(self):
        extra = f", challenger={self.challenger!r}, mode={self.mode!r}, share={self.share}" if self.challenger else ""
        return f"Router({self.store.path}, {self.name!r}, alias={self.alias!r}{extra})"

    # -------------------------------------------------------------------------- life cycle
    def start(self):
        """Load (and verify) the aliases' versions, then follow them in the background.

        A version that fails to load is reported in :attr:`failures` and the router keeps trying when
        the alias moves; :attr:`ready` tells whether a champion is being served.

        Returns
        -------
        Router
            ``self`` (started once: a second call does nothing).
        """
        if self._threads:
            return self
        self._stop.clear()
        self.refresh()
        for target, label in ((self._poll_loop, "poll"), (self._work_loop, "offpath")):
            thread = threading.Thread(target=target, name=f"ml_toolbox-router-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout=5.0):
        """Stop following the store and finish the off-path work already queued.

        Parameters
        ----------
        timeout : float, default=5.0
            Seconds to wait for each background thread to end.
        """
        self._stop.set()
        self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def ready(self):
        """True once a verified champion version is loaded."""
        return self._state.champion is not None

    @property
    def serving(self):
        """``{"champion": version, "challenger": version}`` as routed now (None when not loaded)."""
        state = self._state
        return {"champion": state.champion.version if state.champion else None,
                "challenger": state.challenger.version if state.challenger else None}

    # ------------------------------------------------------------------------ following aliases
    def refresh(self):
        """Read the store's aliases once; load, verify and swap in any version that moved.

        Returns
        -------
        dict
            ``{"champion": version, "challenger": version}`` as routed now (None when not loaded).
        """
        with self._refresh_lock:
            targets = self.store.aliases(self.name)
            state = self._state
            for role, alias in (("champion", self.alias), ("challenger", self.challenger)):
                if alias is None:
                    continue
                target = targets.get(alias)
                current = getattr(state, role)
                if target is None or (current is not None and current.version == target):
                    continue
                if self._failed.get(alias) == target:
                    continue  # reported already; tried again when the alias moves
                try:
                    slot = self._load(alias, target)
                except Exception as exc:  # noqa: BLE001 - any failure: never serve it, report it
                    self._failed[alias] = target
                    failure = {"when": time.time(), "alias": alias, "version": target,
                               "error": f"{type(exc).__name__}: {exc}"}
                    self.failures.append(failure)
                    log.error("Not serving %r version %s (alias %r): %s", self.name, target, alias,
                              failure["error"])
                    continue
                self._failed.pop(alias, None)
                state = state._replace(**{role: slot})
                self._state = state  # the swap: one assignment
                self.swaps.append({"when": time.time(), "role": role, "alias": alias,
                                   "from": current.version if current else None, "to": target})
            live = {s.version for s in state if s is not None}
            for version in list(self._models):
                if version not in live and len(self._models) > 4:
                    del self._models[version]
        return self.serving

    def _load(self, alias, version):
        cached = self._models.get(version)
        if cached is None:
            model = self.store.load(self.name, version, **self.load_options)  # verified before unpickling
            if not callable(getattr(model, "predict", None)):
                raise TypeError(f"version {version} of {self.name!r} is a {type(model).__name__}, which has no "
                                "predict method")
            schema = self.store.manifest(self.name, version).get("schema")
            cached = self._models[version] = (model, schema)
        return _Slot(alias, version, cached[0], cached[1])

    def _poll_loop(self):
        last_policy = time.monotonic()
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - the store may be briefly unreadable; keep serving
                log.warning("Could not read the aliases of %r: %s", self.name, exc)
            if self.policy is not None and time.monotonic() - last_policy >= self.policy_interval:
                last_policy = time.monotonic()
                try:
                    self.evaluate(act=True)
                except Exception as exc:  # noqa: BLE001
                    log.error("Rollout policy failed: %s", exc)

    # ------------------------------------------------------------------------------ serving
    def _routes_to_challenger(self, key):
        if key is None:
            return self._rng.random() < self.share
        h = zlib.crc32(key.encode() if isinstance(key, str) else str(key).encode())
        h ^= h >> 16  # murmur3's finaliser: CRC-32 is linear, this spreads nearby keys evenly
        h = (h * 0x85EBCA6B) & 0xFFFFFFFF
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & 0xFFFFFFFF
        h ^= h >> 16
        return h < self.share * 4294967296.0

    def route(self, key=None):
        """Return the slot that would answer a request with ``key`` (canary).

        Parameters
        ----------
        key : str, optional
            Canary stickiness: the same key always meets the same version.

        Returns
        -------
        tuple of (str, int)
            ``(alias, version)`` of the slot.

        Raises
        ------
        NotReadyError
            When no champion version is loaded yet.
        """
        state = self._state
        if state.champion is None:
            raise NotReadyError(f"No verified version of {self.name!r} is loaded yet for alias {self.alias!r}.")
        chal = state.challenger
        if (self.mode == "canary" and chal is not None and chal.version != state.champion.version
                and self._routes_to_challenger(key)):
            return chal.alias, chal.version
        return state.champion.alias, state.champion.version

    def predict(self, X, method="predict", key=None, defer=False):
        """Answer one request: an :class:`Answer` with the predictions and the version that made them.

        Parameters
        ----------
        X : array-like or DataFrame
            The request's rows.
        method : {"predict", "predict_proba"}, default="predict"
            The pipeline method that answers.
        key : str, optional
            Canary stickiness: the same key always meets the same version.
        defer : bool, default=False
            Leave the off-path work (shadow, agreement) in ``answer.offpath`` for :meth:`submit`, to be
            queued once the caller has its answer (the HTTP server does so after sending the response).

        Returns
        -------
        Answer
            The predictions, the alias and version that made them, and the request id.

        Raises
        ------
        NotReadyError
            When no champion version is loaded yet.
        Exception
            Whatever the serving version raised (counted as an error of that version).
        ValueError
            For a ``method`` the router does not serve.
        """
        state = self._state  # read once: this request sees one routing state, whatever swaps meanwhile
        champion = state.champion
        if champion is None:
            raise NotReadyError(f"No verified version of {self.name!r} is loaded yet for alias {self.alias!r}.")
        if method not in METHODS:
            raise ValueError(f"Unknown method {method!r}: a router serves {METHODS}.")
        slot, other = champion, None
        chal = state.challenger
        if chal is not None and chal.version != champion.version:
            if self.mode == "canary":
                if self._routes_to_challenger(key):
                    slot, other = chal, champion
            elif self.share >= 1.0 or self._rng.random() < self.share:
                other = chal
        request_id = f"{self._prefix}-{next(self._ids)}"
        start = time.perf_counter()
        try:
            result = getattr(slot.model, method)(X)
        except InputSchemaError:  # the caller's input, refused by the pipeline's input check: not the version's fault
            self.kpis.reject(slot.version)
            raise
        except Exception:
            self.kpis.record(slot.version, time.perf_counter() - start, False)
            raise
        self.kpis.record(slot.version, time.perf_counter() - start, True, request_id,
                         result if method == "predict" else None)
        answer = Answer(result, slot.version, slot.alias, request_id)
        if other is not None:
            answer.offpath = (other, slot, X, method, result, request_id)
            if not defer:
                self.submit(answer)
        return answer

    def submit(self, answer):
        """Queue the off-path work of an answer made with ``defer=True``.

        The work is dropped (and counted in :attr:`dropped`) when ``max_pending`` jobs are already
        waiting.

        Parameters
        ----------
        answer : Answer
            The answer :meth:`predict` returned.
        """
        job, answer.offpath = answer.offpath, None
        if job is None:
            return
        if self._jobs.qsize() < self.max_pending:
            self._jobs.put(job)
        else:
            self.dropped += 1

    def _work_loop(self):
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if isinstance(job, threading.Event):  # drain(): everything queued before it is done
                job.set()
                continue
            other, primary, X, method, result, request_id = job
            start = time.perf_counter()
            try:
                theirs = getattr(other.model, method)(X)
            except Exception:  # noqa: BLE001 - an off-path failure is a KPI, never the caller's
                if self.mode == "shadow":
                    self.kpis.record(other.version, time.perf_counter() - start, False)
                continue
            if self.mode == "shadow":  # the challenger shadows: its own KPIs, compared with the champion
                self.kpis.record(other.version, time.perf_counter() - start, True)
                self.kpis.compare(other.version, result, theirs, request_id if method == "predict" else None)
            else:  # canary: the champion's answer, computed to measure the challenger's agreement
                self.kpis.compare(primary.version, theirs, result)

    def feedback(self, request_id, y_true):
        """Attach true labels to an answered request (see :meth:`KPIBoard.feedback`).

        Parameters
        ----------
        request_id : str
            The ``request_id`` of the :class:`Answer`.
        y_true : array-like
            The true labels, one per row of the request.

        Returns
        -------
        int
            How many versions the labels scored (the one that answered, and a shadow or canary).

        Raises
        ------
        KeyError
            When ``request_id`` is unknown (never answered, or forgotten).
        ValueError
            When ``y_true`` has another length than the request's predictions.
        """
        return self.kpis.feedback(request_id, y_true)

    def drain(self, timeout=5.0):
        """Wait until the off-path work queued so far is done (tests, benchmarks, before a decision).

        Parameters
        ----------
        timeout : float, default=5.0
            Seconds to wait at most.

        Returns
        -------
        bool
            True when the work was done in time.
        """
        done = threading.Event()
        self._jobs.put(done)
        return done.wait(timeout)

    # ---------------------------------------------------------------------------- KPIs, policy
    def status(self):
        """Return the routing state and the KPIs of the champion and challenger versions.

        Returns
        -------
        dict
            ``name``, ``alias``, ``mode``, ``share``, ``ready``, ``failures``, ``decisions``, the KPIs of
            ``champion`` and ``challenger`` side by side and, with a policy, its ``verdict``.
        """
        state = self._state
        out = {"name": self.name, "alias": self.alias, "challenger_alias": self.challenger, "mode": self.mode,
               "share": self.share, "ready": state.champion is not None, "dropped": self.dropped,
               "failures": list(self.failures[-10:]), "decisions": list(self.decisions)}
        for role, slot in (("champion", state.champion), ("challenger", state.challenger)):
            out[role] = dict(self.kpis.snapshot(slot.version), alias=slot.alias) if slot is not None else None
        if self.policy is not None:
            out["policy"] = self.policy.describe()
            out["verdict"] = self.evaluate(act=False).to_dict()
        return out

    def evaluate(self, act=True):
        """Judge the challenger with the policy; with ``act`` (and no dry run) carry the verdict out.

        A promotion moves the champion alias to the challenger's version through
        ``PipelinePersistence.promote`` with the policy's gates; a rollback points the challenger alias
        back at the champion's version (so the canary or shadow stops). Either way the alias history
        records the reason and the KPI evidence (read it back with :func:`evidence_of`). A verdict is
        carried out once per challenger version.

        Parameters
        ----------
        act : bool, default=True
            Carry the verdict out (unless the policy is a dry run); False only judges.

        Returns
        -------
        Verdict
            The decision, its reasons and the KPI evidence.
        """
        from ml_toolbox.persistence import PersistenceError

        if self.policy is None:
            raise ValueError("Router.evaluate: this router has no policy.")
        state = self._state
        if state.champion is None or state.challenger is None or state.challenger.version == state.champion.version:
            return Verdict("hold", ["no challenger version differs from the champion's"])
        if act:
            self.drain(1.0)
        champion = self.kpis.snapshot(state.champion.version)
        challenger = self.kpis.snapshot(state.challenger.version)
        verdict = self.policy.decide(champion, challenger)
        if not act or verdict.action not in ("promote", "rollback"):
            return verdict
        key = (verdict.action, state.challenger.version)
        if self.policy.dry_run or key in self._acted:
            return verdict
        self._acted.add(key)
        reason = (f"rollout {verdict.action} of version {state.challenger.version}: {'; '.join(verdict.reasons)}"
                  f"{EVIDENCE_MARK}{json.dumps(verdict.evidence, sort_keys=True, default=str)}")
        try:
            if verdict.action == "promote":
                self.store.promote(self.name, state.challenger.version, self.alias, gates=self.policy.gates,
                                   reason=reason)
            else:
                self.store.promote(self.name, state.champion.version, self.challenger, reason=reason)
            verdict.done = True
        except (PersistenceError, ValueError) as exc:
            verdict.error = f"{type(exc).__name__}: {exc}"
            log.error("Rollout %s of %r version %s refused: %s", verdict.action, self.name,
                      state.challenger.version, exc)
        self.decisions.append(dict(verdict.to_dict(), when=time.time(), version=state.challenger.version))
        if verdict.done:
            self.refresh()
        return verdict
