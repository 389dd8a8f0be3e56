"""Rollout policy: when a challenger is promoted or rolled back, judged by the KPIs it earned.

A rule reads ``kpi OP value`` where value is a number or ``champion`` (the same KPI of the version the
champion alias serves), optionally shifted: ``p95_ms<=champion*1.2``, ``accuracy>=champion-0.01``,
``error_rate<=0.01``, ``agreement>=0.98``. KPIs: ``requests``, ``errors``, ``error_rate``, ``p50_ms``,
``p95_ms``, ``p99_ms``, ``agreement``, ``compared``, ``feedback`` and the feedback metrics by name.
"""

import json
import re
from dataclasses import dataclass, field

from ml_toolbox.persistence import Gate

__all__ = ["Rule", "RolloutPolicy", "Verdict", "evidence_of"]

_SHAPES = "'error_rate<=0.01', 'p95_ms<=champion*1.2', 'accuracy>=champion-0.01', 'agreement>=0.98'"
_CHAMPION = re.compile(r"\bchampion\b")
_CURRENT = re.compile(r"\bcurrent\b")
#: Marks the alias-history reason of a decision taken by a policy; the evidence JSON follows it.
EVIDENCE_MARK = " evidence="


def _num(value):
    """Shortest exact text of a number: 0.85 -> '0.85', 1.0 -> '1'."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Rule(Gate):
    """One rule on a KPI, absolute or relative to the champion.

    A store gate (same grammar, same arithmetic) whose ``current`` reads ``champion``, judged on
    live KPIs instead of saved metrics.

    Parameters
    ----------
    metric : str
        The KPI (``"error_rate"``, ``"p95_ms"``, ``"agreement"``, a metric name...).
    op : {">=", "<=", ">", "<", "=="}
        How the challenger's KPI must compare.
    threshold : float, optional
        Absolute threshold. Leave None for a rule relative to the champion.
    shift : {None, "+", "-", "*"}, optional
        For a relative rule: how ``amount`` modifies the champion's KPI.
    amount : float, default=0.0
        The shift applied to the champion's KPI.

    Examples
    --------
    >>> rule = Rule.parse("p95_ms<=champion*1.2")
    >>> rule.check({"p95_ms": 11.0}, {"p95_ms": 10.0})
    (True, 'p95_ms=11 <= 12 (champion*1.2)')
    >>> Rule.parse("error_rate<=0.01").check({"error_rate": 0.5}, {})
    (False, 'error_rate=0.5 <= 0.01 fails')
    """

    @property
    def kpi(self):
        """The KPI the rule reads (its ``metric``)."""
        return self.metric

    def __str__(self):
        return _CURRENT.sub("champion", super().__str__())

    def __repr__(self):
        return f"Rule({str(self)!r})"

    @classmethod
    def parse(cls, spec):
        """Build a rule from text such as ``"error_rate<=0.01"`` or ``"p95_ms<=champion*1.2"``.

        Parameters
        ----------
        spec : str or Rule
            The rule's text (a rule is returned as is).

        Returns
        -------
        Rule
            The rule.

        Raises
        ------
        TypeError
            When ``spec`` is not a string.
        ValueError
            When the text is not a rule; the message shows the shapes rules take.
        """
        if isinstance(spec, Rule):
            return spec
        if not isinstance(spec, str):
            raise TypeError(f"A rollout rule is a string such as {_SHAPES}; got {spec!r} of type "
                            f"{type(spec).__name__}.")
        if _CURRENT.search(spec):
            raise ValueError(f"Cannot parse the rollout rule {spec!r}: compare with 'champion'. Rules look like {_SHAPES}.")
        try:
            gate = Gate.parse(_CHAMPION.sub("current", spec))
        except ValueError:
            raise ValueError(f"Cannot parse the rollout rule {spec!r}. Rules look like {_SHAPES}.") from None
        return cls(gate.metric, gate.op, gate.threshold, gate.shift, gate.amount)

    def check(self, challenger, champion):
        """Judge the challenger's KPIs against the rule.

        Parameters
        ----------
        challenger : dict
            The challenger's KPIs (as :meth:`KPIBoard.snapshot` returns them).
        champion : dict
            The champion's KPIs (read by relative rules).

        Returns
        -------
        passed : bool or None
            Whether the rule holds; None when a KPI needed has no value yet.
        explanation : str
            The values compared, for the decision's reasons.
        """
        value = challenger.get(self.kpi)
        if value is None:
            return None, f"{self.kpi}: no value yet"
        ref = None
        if self.relative:
            ref = champion.get(self.kpi)
            if ref is None:
                return None, f"{self.kpi}: the champion has no value yet"
        passed = Gate.check(self, value, ref)
        where = "" if not self.relative else f" (champion{self.shift}{_num(self.amount)})" if self.shift else " (champion)"
        text = f"{self.kpi}={_num(value)} {self.op} {_num(self.bound(ref))}{where}"
        return passed, text if passed else text + " fails"


@dataclass
class Verdict:
    """What a policy decides.

    Parameters
    ----------
    action : {"wait", "hold", "promote", "rollback"}
        ``"wait"`` (too few requests), ``"hold"`` (keep watching), ``"promote"`` or ``"rollback"``.
    reasons : list of str, default=[]
        Why: the rules that failed, or held.
    evidence : dict, default={}
        The KPIs the policy saw (``champion``, ``challenger``) and the policy itself.
    done : bool, default=False
        Whether the decision was carried out on the store (False in a dry run, or when refused).
    error : str or None, default=None
        Why carrying it out failed (e.g. a store gate refused the promotion).

    Examples
    --------
    >>> from ml_toolbox.serving import RolloutPolicy
    >>> verdict = RolloutPolicy(rollback=["error_rate<=0.01"], min_requests=10).decide(
    ...     {"requests": 100, "error_rate": 0.0}, {"requests": 20, "error_rate": 0.5})
    >>> verdict.action, verdict.reasons
    ('rollback', ['error_rate=0.5 <= 0.01 fails'])
    """

    action: str
    reasons: list = field(default_factory=list)
    evidence: dict = field(default_factory=dict)
    done: bool = False  # carried out on the store (False in dry run, or when refused)
    error: str | None = None

    def to_dict(self):
        """Return the verdict as plain JSON-ready values.

        Returns
        -------
        dict
            ``action``, ``reasons``, ``done``, ``error`` and ``evidence``.
        """
        return {"action": self.action, "reasons": list(self.reasons), "done": self.done, "error": self.error,
                "evidence": self.evidence}


class RolloutPolicy:
    """Rules that promote a challenger or roll it back, and a minimum number of requests first.

    Parameters
    ----------
    promote : list of str, default=()
        All must hold to promote the challenger (absolute, or relative to the champion: see :class:`Rule`).
    rollback : list of str, default=()
        Limits: the challenger is rolled back as soon as one of them fails.
    min_requests : int, default=100
        No decision before the challenger has answered (or shadowed) this many requests.
    gates : list or mapping, optional
        The store's quality gates, checked by ``PipelinePersistence.promote`` (e.g. ``["accuracy>=current"]``).
    dry_run : bool, default=False
        Decide and report, never act on the store.

    Examples
    --------
    >>> policy = RolloutPolicy(promote=["agreement>=0.98", "p95_ms<=champion*1.2"],
    ...                        rollback=["error_rate<=0.01"], min_requests=100)
    >>> champion = {"requests": 900, "p95_ms": 2.0, "error_rate": 0.0}
    >>> policy.decide(champion, {"requests": 50, "error_rate": 0.0}).action
    'wait'
    >>> policy.decide(champion, {"requests": 120, "error_rate": 0.2}).action
    'rollback'
    >>> policy.decide(champion, {"requests": 120, "error_rate": 0.0, "agreement": 0.99, "p95_ms": 2.1}).action
    'promote'
    """

    def __init__(self, promote=(), rollback=(), *, min_requests=100, gates=None, dry_run=False):
        self.promote = [Rule.parse(r) for r in ([promote] if isinstance(promote, str) else promote)]
        self.rollback = [Rule.parse(r) for r in ([rollback] if isinstance(rollback, str) else rollback)]
        if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 0:
            raise ValueError(f"RolloutPolicy: min_requests must be a non-negative int; got {min_requests!r}.")
        self.min_requests = min_requests
        self.gates = gates
        self.dry_run = bool(dry_run)

    def __repr__(self):
        return (f"RolloutPolicy(promote={[str(r) for r in self.promote]}, rollback={[str(r) for r in self.rollback]}, "
                f"min_requests={self.min_requests}, dry_run={self.dry_run})")

    def describe(self):
        """Return the policy as plain data (recorded with every decision).

        Returns
        -------
        dict
            ``promote``, ``rollback`` (the rules as text), ``min_requests``, ``gates`` and ``dry_run``.
        """
        return {"promote": [str(r) for r in self.promote], "rollback": [str(r) for r in self.rollback],
                "min_requests": self.min_requests, "gates": self.gates, "dry_run": self.dry_run}

    def decide(self, champion, challenger):
        """Decide on the challenger from its KPIs and the champion's.

        Parameters
        ----------
        champion : dict
            The champion's KPIs (as :meth:`KPIBoard.snapshot` returns them).
        challenger : dict
            The challenger's KPIs.

        Returns
        -------
        Verdict
            ``"wait"`` before ``min_requests``, ``"rollback"`` when a rollback rule fails,
            ``"promote"`` when every promotion rule holds, else ``"hold"``.
        """
        evidence = {"policy": self.describe(), "champion": dict(champion), "challenger": dict(challenger)}
        seen = max(challenger.get("requests") or 0, challenger.get("compared") or 0)
        if seen < self.min_requests:
            return Verdict("wait", [f"challenger has {seen} request(s); the policy needs {self.min_requests}"],
                           evidence)
        failed = []
        for rule in self.rollback:
            passed, text = rule.check(challenger, champion)
            if passed is False:
                failed.append(text)
        if failed:
            return Verdict("rollback", failed, evidence)
        reasons, ready = [], bool(self.promote)
        for rule in self.promote:
            passed, text = rule.check(challenger, champion)
            reasons.append(text)
            ready = ready and passed is True
        if not self.promote:
            reasons.append("no promotion rule: the policy only rolls back")
        return Verdict("promote" if ready else "hold", reasons, evidence)


def evidence_of(event):
    """Return the KPI evidence a policy recorded with an alias-history event.

    Parameters
    ----------
    event : dict
        An event of ``store.history(name)``.

    Returns
    -------
    dict or None
        The evidence (``policy``, ``champion``, ``challenger``), or None for an event a policy did
        not record.

    Examples
    --------
    >>> evidence_of({"reason": 'rollout rollback: error_rate=1 <= 0.01 fails evidence={"challenger": {"version": 2}}'})
    {'challenger': {'version': 2}}
    >>> evidence_of({"reason": "manual"}) is None
    True
    """
    reason = event.get("reason") or ""
    at = reason.find(EVIDENCE_MARK)
    if not reason.startswith("rollout ") or at < 0:
        return None
    try:
        return json.loads(reason[at + len(EVIDENCE_MARK):])
    except ValueError:
        return None
