"""Quality gates for ``PipelinePersistence.promote``: absolute thresholds and comparisons with the
version currently holding the alias.

A gate reads ``metric OP value`` where value is a number or ``current`` (the metric of the version
holding the alias now), optionally shifted: ``current-0.01``, ``current+5``, ``current*1.1``.
"""

import math
import operator
import re
from dataclasses import dataclass

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_GATE_RE = re.compile(r"^\s*(?P<metric>[^<>=!\s]+)?\s*(?P<op>>=|<=|==|>|<)\s*(?P<rhs>\S.*?)\s*$")
_RHS_RE = re.compile(r"^current\s*(?:(?P<shift>[-+*])\s*(?P<amount>[0-9.eE+-]+))?$")


def fmt_number(value):
    """Return the shortest exact text of a number.

    Parameters
    ----------
    value : float
        The number.

    Returns
    -------
    str
        Its ``repr`` as a float, without a trailing ``.0``.

    Examples
    --------
    >>> fmt_number(0.85), fmt_number(1.0)
    ('0.85', '1')
    """
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Gate:
    """One quality gate.

    Parameters
    ----------
    metric : str
        Name of the metric recorded with the version (``save(..., metrics={...})``).
    op : {">=", "<=", ">", "<", "=="}
        How the candidate's metric must compare.
    threshold : float, optional
        Absolute threshold. Leave None for a relative gate.
    shift : {None, "+", "-", "*"}, optional
        For a relative gate (``threshold is None``): how ``amount`` modifies the current metric.
    amount : float, default=0.0
        The shift applied to the current version's metric (0 for a plain ``current``).

    Examples
    --------
    >>> Gate.parse("accuracy>=0.85")
    Gate('accuracy>=0.85')
    >>> Gate.parse("log_loss<=current*1.05").relative
    True
    """

    metric: str
    op: str
    threshold: float | None = None
    shift: str | None = None
    amount: float = 0.0

    @property
    def relative(self):
        """Whether the gate compares with the current version (no absolute threshold)."""
        return self.threshold is None

    def __str__(self):
        if not self.relative:
            return f"{self.metric}{self.op}{fmt_number(self.threshold)}"
        if self.shift is None:
            return f"{self.metric}{self.op}current"
        return f"{self.metric}{self.op}current{self.shift}{fmt_number(self.amount)}"

    def __repr__(self):
        return f"Gate({str(self)!r})"

    @classmethod
    def parse(cls, spec, metric=None):
        """Build a gate from ``"accuracy>=0.85"``, or from ``(metric, ">=0.85")`` / ``(metric, 0.85)``.

        Parameters
        ----------
        spec : str, float or Gate
            The gate's text, or a number (a minimum; with ``metric``). A gate is returned as is.
        metric : str, optional
            The metric, when ``spec`` does not name it.

        Returns
        -------
        Gate
            The gate.

        Raises
        ------
        TypeError
            When ``spec`` is neither a string nor a number.
        ValueError
            When the text is not a gate, names no metric, or has a NaN threshold.
        """
        if isinstance(spec, Gate):
            return spec
        if metric is not None and isinstance(spec, (int, float)) and not isinstance(spec, bool):
            return cls(metric, ">=", float(spec))
        if not isinstance(spec, str):
            raise TypeError(
                f"A gate must be a string such as 'accuracy>=0.85' or a number (a minimum); got {spec!r} "
                f"of type {type(spec).__name__}."
            )
        match = _GATE_RE.match(spec)
        allowed = "'metric>=0.85', 'metric<=current', 'metric>=current-0.01', 'metric<=current*1.1'"
        if match is None:
            raise ValueError(f"Cannot parse the gate {spec!r}. Gates look like {allowed}.")
        name = match["metric"] or metric
        if name is None:
            raise ValueError(f"The gate {spec!r} names no metric. Gates look like {allowed}.")
        if metric is not None and match["metric"] and match["metric"] != metric:
            raise ValueError(f"The gate {spec!r} given for metric {metric!r} names another metric.")
        rhs = match["rhs"]
        try:
            value = float(rhs)
        except ValueError:
            relative = _RHS_RE.match(rhs)
            if relative is None:
                raise ValueError(f"Cannot parse the gate {spec!r}. Gates look like {allowed}.") from None
            shift = relative["shift"]
            amount = float(relative["amount"]) if shift else 0.0
            return cls(name, match["op"], None, shift, amount)
        if math.isnan(value):
            raise ValueError(f"The gate {spec!r} has a NaN threshold.")
        return cls(name, match["op"], value)

    def bound(self, current_value):
        """Return the value the metric is compared with.

        Parameters
        ----------
        current_value : float or None
            The metric of the version holding the alias (read by a relative gate only).

        Returns
        -------
        float
            The threshold, or ``current_value`` shifted.
        """
        if not self.relative:
            return self.threshold
        if self.shift == "+":
            return current_value + self.amount
        if self.shift == "-":
            return current_value - self.amount
        if self.shift == "*":
            return current_value * self.amount
        return current_value

    def check(self, value, current_value=None):
        """Tell whether a metric passes the gate.

        Parameters
        ----------
        value : float
            The candidate's metric.
        current_value : float, optional
            The metric of the version holding the alias (needed for a relative gate).

        Returns
        -------
        bool
            True when ``value`` passes.
        """
        return bool(_OPS[self.op](value, self.bound(current_value)))


def parse_gates(gates):
    """Normalise gates to a list of :class:`Gate`.

    Parameters
    ----------
    gates : None, str, Gate, mapping or iterable
        None, one spec, a mapping metric -> spec (or list of specs), or an iterable of specs.

    Returns
    -------
    list of Gate
        The gates, in order.

    Raises
    ------
    TypeError, ValueError
        For a spec that is not a gate (see :meth:`Gate.parse`).

    Examples
    --------
    >>> parse_gates({"accuracy": 0.85, "log_loss": "<=current"})
    [Gate('accuracy>=0.85'), Gate('log_loss<=current')]
    """
    if gates is None:
        return []
    if isinstance(gates, (str, Gate)):
        gates = [gates]
    if hasattr(gates, "items"):
        out = []
        for metric, specs in gates.items():
            for spec in specs if isinstance(specs, (list, tuple)) else [specs]:
                out.append(Gate.parse(spec, metric=str(metric)))
        return out
    return [Gate.parse(spec) for spec in gates]
