"""How ``ml-toolbox`` prints: JSON with typed fields, and tables that fit the terminal.

Shared by the store's, the runs' and the serving commands, so every ``--json`` output follows the same
rules (docs/cli.md, "JSON output"): numbers are JSON numbers (NaN and infinities are ``null``),
timestamps are ISO 8601 strings, lists are lists and mappings (aliases, metrics) are objects. Tables
never wrap a row: a cell too wide for the terminal is cut with an ellipsis (``--json`` has the whole
value).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Group
from rich.table import Table

__all__ = ["typed", "print_json", "fit", "iso"]


def iso(seconds: float | None) -> str | None:
    """A wall-clock time (seconds since the epoch) as ISO 8601 in UTC, to the microsecond.

    Parameters
    ----------
    seconds : float or None
        Seconds since the epoch.

    Returns
    -------
    str or None
        ``2026-12-03T13:15:02.250000+00:00``; None for None.

    Examples
    --------
    >>> iso(0.0)
    '1970-01-01T00:00:00+00:00'
    """
    if seconds is None:
        return None
    return _dt.datetime.fromtimestamp(float(seconds), _dt.timezone.utc).isoformat()


def typed(value: Any, times: Iterable[str] = ()) -> Any:
    """``value`` made of JSON types only, with the fields named in ``times`` as ISO 8601 strings.

    Parameters
    ----------
    value : object
        Mappings, sequences, numbers (numpy's too), strings, datetimes, None.
    times : iterable of str, default=()
        Keys whose numeric values are wall-clock times in seconds since the epoch, at any depth.

    Returns
    -------
    object
        Dicts, lists, str, int, float, bool and None: NaN and infinities become None, tuples and sets
        lists, datetimes ISO 8601, anything else its ``str``.

    Examples
    --------
    >>> typed({"start": 0, "score": float("nan"), "shape": (3, 2)}, times=("start",))
    {'start': '1970-01-01T00:00:00+00:00', 'score': None, 'shape': [3, 2]}
    """
    times = frozenset(times)
    return _typed(value, times)


def _typed(value: Any, times: frozenset[str]) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): (iso(v) if k in times and _is_number(v) else _typed(v, times))
                for k, v in value.items()}
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if _is_number(value):
        if hasattr(value, "item"):  # numpy scalars
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_typed(v, times) for v in items]
    if hasattr(value, "tolist"):  # numpy arrays
        return _typed(value.tolist(), times)
    return str(value)


def _is_number(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def print_json(out: Any, data: Any, times: Iterable[str] = ()) -> None:
    """Print ``data`` as JSON on the rich console ``out`` (see :func:`typed` for the conversions).

    Parameters
    ----------
    out : rich.console.Console
        Where to print.
    data : object
        What to print.
    times : iterable of str, default=()
        Keys whose numeric values are epoch seconds, printed as ISO 8601.
    """
    out.print_json(json.dumps(typed(data, times), allow_nan=False))


def fit(table: Any, width: int | None = None) -> Any:
    """Make ``table`` fit the console's width without wrapping a row (cells cut with an ellipsis).

    A line break inside a cell becomes ``⏎``, so a cell is one line too.

    Parameters
    ----------
    table : rich.table.Table, rich.console.Group or any renderable
        Changed in place: a table, or each table of a group (anything else is left alone).
    width : int, optional
        The console's width. Given, the columns narrower than their fair share of it keep their whole
        width, and only the wide ones are cut (rich alone would shrink every column in proportion).

    Returns
    -------
    object
        ``table``.

    Examples
    --------
    >>> from rich.table import Table
    >>> t = fit(Table("name", "message"))
    >>> [(c.no_wrap, c.overflow) for c in t.columns]
    [(True, 'ellipsis'), (True, 'ellipsis')]
    """
    if hasattr(table, "__rich__") and not isinstance(table, Table):
        table = table.__rich__()
    if isinstance(table, Group):
        for part in table.renderables:
            fit(part, width)
        return table
    if not isinstance(table, Table):
        return table
    for column in table.columns:
        column.no_wrap = True
        column.overflow = "ellipsis"
        cells = column._cells  # rich keeps a column's cells here; a newline would start a second line
        cells[:] = [c.replace("\n", " ⏎ ") if isinstance(c, str) else c for c in cells]
    if width is not None:
        _keep_narrow_columns(table, width)
    return table


def _keep_narrow_columns(table: Table, width: int) -> None:
    """Water-filling: a column narrower than its fair share of the width left keeps its whole width; the
    wider ones share the rest equally (their ``max_width``), so the table fits without rich shrinking
    every column in proportion."""
    from rich.text import Text

    def natural(column: Any) -> int:
        texts = [column.header, *column._cells]
        return max((Text.from_markup(t).cell_len if isinstance(t, str) else getattr(t, "cell_len", 1))
                   for t in texts)

    columns = list(table.columns)
    left = width - (3 * len(columns) + 1)  # a border and a space either side of each cell
    if sum(natural(c) for c in columns) <= left:
        return
    ordered = sorted(columns, key=natural)
    for i, column in enumerate(ordered):
        need, fair = natural(column), left // (len(columns) - i)
        if need > fair:  # this column and the wider ones share what is left, equally
            wide = ordered[i:]
            for j, each in enumerate(wide):
                each.max_width = max(1, left // (len(wide) - j))
                left -= each.max_width
            return
        left -= need
