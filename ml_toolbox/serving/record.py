"""Rollouts recorded as runs: each rollout a router sees (a challenger version served beside the
champion's) becomes one run of kind ``"rollout"`` in the router's trackers (a run store, MLflow...).

The run opens when a challenger version that differs from the champion's is loaded; every window
(each policy evaluation, or every ``policy_interval`` without a policy) logs both versions' KPIs as
metrics at the window's step (``champion.p95_ms``, ``challenger.error_rate``, ...); the run ends when
the rollout does:

- the policy promoted or rolled back the challenger (status ``success``, tag ``decision``, the
  verdict's reasons in tag ``reasons``);
- someone moved an alias by hand (status ``success``, ``decided_by=alias moved``);
- the router stopped first (status ``cancelled``).

The run links both store versions (``runs show`` lists them), and the alias-history event of a
policy's decision names the run (``(run <id>)`` in its reason), so the lineage reads both ways.
"""

import threading

from ml_toolbox.runs._active import ActiveRun, RunCancelled, as_trackers

__all__ = ["RolloutRecorder", "rollout_trackers"]

#: The KPIs logged per window, per role (numbers only).
_LOGGED = ("requests", "errors", "error_rate", "rejected", "p50_ms", "p95_ms", "p99_ms", "agreement",
           "compared", "feedback")


def rollout_trackers(tracking):
    """The trackers of a router's ``tracking`` parameter.

    Parameters
    ----------
    tracking : RunStore, Tracker, str, list, False or None
        None means the run store in ``$ML_TOOLBOX_RUNS`` when that is set (nothing otherwise);
        False means none.

    Returns
    -------
    list of Tracker
        The trackers rollouts are recorded in.

    Examples
    --------
    >>> rollout_trackers(False)
    []
    """
    import os

    if tracking is None:
        if not os.environ.get("ML_TOOLBOX_RUNS"):
            return []
        from ml_toolbox.runs.store import RunStore

        tracking = RunStore()
    return as_trackers(tracking, "Router.tracking")


def _numbers(snapshot, role, metrics):
    out = {}
    for key in _LOGGED + tuple(metrics):
        value = snapshot.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{role}.{key}"] = float(value)
    return out


class RolloutRecorder:
    """Records a :class:`~ml_toolbox.serving.Router`'s rollouts as runs (see the module's text).

    Parameters
    ----------
    router : Router
        The router whose rollouts are recorded.
    trackers : list of Tracker
        Where the runs go (no tracker: nothing is recorded).

    Attributes
    ----------
    run : ActiveRun or None
        The rollout run in progress.
    finished : list of ActiveRun
        The rollout runs this recorder ended (most recent last; the last 20).

    Examples
    --------
    A recorder without a tracker records nothing, and says so by being false:

    >>> bool(RolloutRecorder(router=None, trackers=[]))
    False
    """

    def __init__(self, router, trackers):
        self.router = router
        self.trackers = list(trackers)
        self.run = None
        self.finished = []
        self._pair = None
        self._step = 0
        self._verdict = None
        self._lock = threading.RLock()

    def __bool__(self):
        return bool(self.trackers)

    def observe(self, state):
        """Open, end or keep the rollout run after the routing state became ``state``.

        Parameters
        ----------
        state : tuple
            The router's ``(champion, challenger)`` slots.

        Returns
        -------
        ActiveRun or None
            The rollout run in progress afterwards.
        """
        champion, challenger = state
        pair = None
        if champion is not None and challenger is not None and challenger.version != champion.version:
            pair = (champion.version, challenger.version)
        with self._lock:
            if self.run is not None and pair != self._pair:
                self._end_moved(champion, challenger)
            if pair is not None and self.run is None:
                self._open(champion, challenger, pair)
            return self.run

    def _open(self, champion, challenger, pair):
        router = self.router
        params = {"mode": router.mode, "share": router.share, "champion_alias": router.alias,
                  "challenger_alias": router.challenger, "champion_version": champion.version,
                  "challenger_version": challenger.version, "store": str(router.store.path),
                  "poll_interval": router.poll_interval, "policy_interval": router.policy_interval}
        if router.policy is not None:
            for key, value in router.policy.describe().items():
                params[f"policy.{key}"] = value
        tags = {"source": "serving", "mode": router.mode, "champion_version": str(champion.version),
                "challenger_version": str(challenger.version)}
        run = ActiveRun(self.trackers, name=router.name, kind="rollout", params=params, tags=tags)
        run.start()
        for slot in (champion, challenger):
            run.link_version(router.store.path, router.name, slot.version)
        run.set_progress(None, f"{router.mode} of version {challenger.version} against {champion.version}")
        self.run, self._pair, self._step, self._verdict = run, pair, 0, None

    def current(self, pair):
        """The rollout run in progress, if it is the one of ``pair``.

        Parameters
        ----------
        pair : tuple of int
            The champion's and the challenger's versions.

        Returns
        -------
        ActiveRun or None
            The run, or None when no rollout of ``pair`` is in progress.
        """
        with self._lock:
            return self.run if self.run is not None and self._pair == tuple(pair) else None

    def window(self, champion=None, challenger=None):
        """Log one window of KPIs (both versions') to the rollout run, if one is in progress.

        Parameters
        ----------
        champion, challenger : dict, optional
            KPI snapshots (read from the router's board when not given); given, they are logged
            only if they are of the run's versions.

        Returns
        -------
        dict
            The metrics logged (empty when no rollout is in progress).
        """
        with self._lock:
            run = self.run
            if run is None:
                return {}
            if champion is not None and (champion.get("version"), challenger.get("version")) != self._pair:
                return {}
            kpis = self.router.kpis
            champion = champion if champion is not None else kpis.snapshot(self._pair[0])
            challenger = challenger if challenger is not None else kpis.snapshot(self._pair[1])
            metrics = {**_numbers(champion, "champion", kpis.metrics),
                       **_numbers(challenger, "challenger", kpis.metrics)}
            run.log_metrics(metrics, step=self._step)
            self._step += 1
            return metrics

    def decided(self, verdict, version):
        """Remember a policy's verdict, carried out or refused, on the challenger ``version``.

        The run ends with it once the router sees the aliases move.

        Parameters
        ----------
        verdict : Verdict
            What the policy decided, and whether it was done.
        version : int
            The challenger version judged.
        """
        with self._lock:
            run = self.run
            if run is None or self._pair is None or self._pair[1] != version:
                return
            if verdict.done:
                self._verdict = verdict
            elif verdict.error:
                run.tags["refused"] = f"{verdict.action}: {verdict.error}"

    def _end_moved(self, champion, challenger):
        old_champion, old_challenger = self._pair
        verdict = self._verdict
        if verdict is not None:
            decision, by, reasons = verdict.action, "policy", "; ".join(verdict.reasons)
        elif champion is not None and champion.version == old_challenger:
            decision, by, reasons = "promote", "alias moved", f"{self.router.alias} moved to {old_challenger}"
        elif challenger is None or challenger.version in (old_champion, getattr(champion, "version", None)):
            decision, by, reasons = "rollback", "alias moved", "the challenger alias left version " \
                                                               f"{old_challenger}"
        else:
            decision, by, reasons = "superseded", "alias moved", (
                f"now {getattr(champion, 'version', None)} against {getattr(challenger, 'version', None)}")
        self._end(None, decision=decision, decided_by=by, reasons=reasons)

    def _end(self, error, **tags):
        """Log the last window, then end the run with ``error`` (None: success) and ``tags``."""
        last = self.window()
        run, self.run, self._pair = self.run, None, None
        run.tags.update({k: str(v) for k, v in tags.items()})
        run.finish(error, last)
        self.finished = (self.finished + [run])[-20:]

    def close(self):
        """End the rollout run in progress, if any, as cancelled (the router stops before a decision)."""
        with self._lock:
            if self.run is not None:
                version = self._pair[1]
                self._end(RunCancelled(f"the router stopped before a decision on version {version}"),
                          decision="none")
