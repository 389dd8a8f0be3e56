"""Value parsers of the ``ml-toolbox`` command line (``type=`` of its argparse options).

Each one either returns the parsed value or raises :class:`argparse.ArgumentTypeError`, so a bad value
is a usage error: argparse prints the command's usage line and the message, and ``ml-toolbox`` exits 2
(an error of the store or the run store, found later, exits 1). One module, shared by the store's, the
runs' and the serving commands.
"""

from __future__ import annotations

import argparse
import datetime as _dt
from collections.abc import Callable

__all__ = ["age", "since", "non_negative_int", "positive_int", "positive_float", "non_negative_float",
           "percent", "port", "gate", "rule", "formats", "choice"]


def age(text: str) -> _dt.timedelta:
    """An age such as ``30d``, ``12h``, ``45m``, ``10s`` (or a number of days), as a timedelta.

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    datetime.timedelta
        The age.

    Raises
    ------
    argparse.ArgumentTypeError
        ``text`` is not an age.

    Examples
    --------
    >>> age("12h")
    datetime.timedelta(seconds=43200)
    """
    from ml_toolbox.store._store import _parse_age

    if text.strip().replace(".", "", 1).isdigit():
        return _dt.timedelta(days=float(text))
    try:
        return _parse_age(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an age: give a number and a unit, such as 30d, 12h, 45m or 10s") from None


def since(text: str) -> str:
    """A point in time: an age (``7d``, ``12h``, ``30m``, ``2w``) or an ISO date; returned unchanged.

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    str
        ``text``, once checked (the run store reads it when the command runs).

    Raises
    ------
    argparse.ArgumentTypeError
        ``text`` is neither an age nor an ISO date.

    Examples
    --------
    >>> since("2026-12-01")
    '2026-12-01'
    """
    from ml_toolbox.runs.store import _parse_since

    try:
        _parse_since(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: give an age such as 7d, 12h or 30m, or an ISO date such as "
            "2026-12-01") from None
    return text


def _bounded(kind: type, ok: Callable[[float], bool], name: str) -> Callable[[str], object]:
    def parse(text: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {name}") from None
        if value != value or not ok(value):  # NaN, or out of range
            raise argparse.ArgumentTypeError(f"{text!r} is not {name}")
        return value

    parse.__name__ = name
    return parse


non_negative_int = _bounded(int, lambda v: v >= 0, "an integer >= 0")
positive_int = _bounded(int, lambda v: v >= 1, "an integer >= 1")
positive_float = _bounded(float, lambda v: 0 < v < float("inf"), "a number > 0")
non_negative_float = _bounded(float, lambda v: 0 <= v < float("inf"), "a number >= 0")
percent = _bounded(float, lambda v: 0 <= v <= 100, "a percentage between 0 and 100")
port = _bounded(int, lambda v: 0 <= v <= 65535, "a port number between 0 and 65535")


def _checked(what: str, parser: Callable[[], Callable[[str], object]]) -> Callable[[str], str]:
    """A value parser that returns the text once ``parser()`` (imported when first used) accepts it."""
    def parse(text: str) -> str:
        try:
            parser()(text)
        except (ValueError, TypeError) as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} ({exc})") from None
        return text

    parse.__name__ = what
    return parse


def _gate_parser() -> Callable[[str], object]:
    from ml_toolbox.store.gates import Gate

    return Gate.parse


def _rule_parser() -> Callable[[str], object]:
    from ml_toolbox.serving.policy import Rule

    return Rule.parse


# a store quality gate (accuracy>=0.85, log_loss<=current*1.05) and a rollout rule (p95_ms<=champion*1.2)
gate = _checked("a gate expression", _gate_parser)
rule = _checked("a rollout rule", _rule_parser)


def formats(text: str) -> tuple[str, ...]:
    """A comma-separated list of artifact formats (``joblib``, ``skops``), as a tuple.

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    tuple of str
        The formats named, in order.

    Raises
    ------
    argparse.ArgumentTypeError
        A name is not a format, or the list is empty.

    Examples
    --------
    >>> formats("skops, joblib")
    ('skops', 'joblib')
    """
    names = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in names if f not in ("joblib", "skops")]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of artifact formats: choose among joblib, skops (comma-separated)")
    return names


def choice(*allowed: str) -> Callable[[str], str]:
    """A parser accepting one of ``allowed`` (for repeatable options whose values argparse lists).

    Parameters
    ----------
    *allowed : str
        The values accepted.

    Returns
    -------
    callable
        ``str -> str``, raising :class:`argparse.ArgumentTypeError` for any other value.

    Examples
    --------
    >>> choice("max", "min")("max")
    'max'
    """
    def parse(text: str) -> str:
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(allowed)}")
        return text

    parse.__name__ = "one of " + ", ".join(allowed)
    return parse
