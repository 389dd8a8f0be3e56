"""Bounded HTML tables for notebooks, with their own scoped CSS, and local times to the second.

One helper for every ``_repr_html_`` that draws a table of records (the debugger's trace, the
monitor, the store's views): the page shows at most ``limit`` rows (the latest ones) and a line
counting the rest, so a trace of 10,000 events or a store with 1,000 versions stays a page of tens of
kilobytes; the CSS is scoped to a class (``mlt-table``) so numbers align and statuses keep their colour
in any notebook front end, whatever its own style sheet.
"""

from __future__ import annotations

import datetime as _dt
import html
import time
from collections.abc import Iterable, Sequence

__all__ = ["CSS", "table", "local_time"]

# Scoped to .mlt-table: nothing leaks into the notebook's own style.
CSS = ("<style>.mlt-table{font-family:var(--jp-code-font-family,monospace);font-size:12px;"
       "margin:4px 0 8px 0}.mlt-table table{border-collapse:collapse}"
       ".mlt-table caption{text-align:left;font-weight:bold;padding-bottom:4px}"
       ".mlt-table th,.mlt-table td{padding:2px 8px;text-align:left;white-space:nowrap;"
       "border-bottom:1px solid rgba(128,128,128,.3)}"
       ".mlt-table th.num,.mlt-table td.num{text-align:right;font-variant-numeric:tabular-nums}"
       ".mlt-table th.group{background:rgba(128,128,128,.08)}"
       ".mlt-table .success{color:#2e7d32}.mlt-table .failed{color:#c62828}"
       ".mlt-table .retried{color:#ef6c00}.mlt-table .hint{opacity:.7;font-style:italic}"
       "</style>")


Cell = str | tuple[str, str]


def table(caption: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], *, numeric: Iterable[int] = (),
          limit: int | None = None, total: int | None = None, hidden: str = "earlier rows", note: str = "",
          css: Sequence[str | None] | None = None, empty: str | None = "(nothing yet)", style: bool = True) -> str:
    """An HTML table of ``rows`` (text cells), showing the last ``limit`` of them and counting the rest.

    Parameters
    ----------
    caption : str
        The table's caption (escaped).
    columns : sequence of str
        The header cells.
    rows : sequence of sequence of str or (str, str)
        The body, oldest first; each cell is text (escaped), or ``(text, css_class)`` for a cell of
        its own class (a status). A row of one cell that starts with ``"\\0"`` is a group heading
        spanning every column.
    numeric : iterable of int, default=()
        The columns aligned right with tabular figures.
    limit : int, optional
        Show only the last ``limit`` rows, after a line saying how many are not shown. None shows all.
    total : int, optional
        How many rows there are in all, when ``rows`` holds only the latest of them (so a caller need
        not format rows nobody sees); default ``len(rows)``.
    hidden : str, default="earlier rows"
        What the count line calls the rows not shown: ``"1,200 earlier rows not shown"``.
    note : str, default=""
        Text after "not shown" on the count line, such as where to find every row.
    css : sequence of str or None, optional
        A CSS class per row (``"failed"``), aligned with ``rows``.
    empty : str or None, default="(nothing yet)"
        The line shown when there are no rows (None: none).
    style : bool, default=True
        Start with the scoped ``<style>`` (:data:`CSS`); several tables on one page need it once.

    Returns
    -------
    str
        ``<style>...</style><div class="mlt-table"><table>...</table></div>``.

    Examples
    --------
    >>> page = table("runs", ["#", "status"], [[str(i), "success"] for i in range(500)], numeric=[0],
    ...              limit=100)
    >>> "400 earlier rows not shown" in page, page.count("<tr>")  # header, count line, 100 rows
    (True, 102)
    """
    esc = html.escape
    right = set(numeric)
    n = len(columns)

    def cell(i: int, value: Cell, tag: str = "td") -> str:
        text, klass = (value, "") if isinstance(value, str) else value
        classes = " ".join(c for c in ("num" if i in right else "", klass) if c)
        return f'<{tag} class="{esc(classes)}">{esc(text)}</{tag}>' if classes else f"<{tag}>{esc(text)}</{tag}>"

    kept = list(rows) if limit is None else list(rows)[max(0, len(rows) - max(0, int(limit))):]
    earlier = max(0, (len(rows) if total is None else total) - len(kept))
    classes = list(css)[len(rows) - len(kept):] if css is not None else [None] * len(kept)
    body = []
    if earlier:
        body.append(f'<tr><td class="hint" colspan="{n}">{earlier:,} {esc(hidden)} not shown'
                    f"{esc(note)}</td></tr>")
    for row, klass in zip(kept, classes):
        if len(row) == 1 and isinstance(row[0], str) and row[0].startswith("\0"):
            body.append(f'<tr><th class="group" colspan="{n}">{esc(row[0][1:])}</th></tr>')
            continue
        attr = f' class="{esc(klass)}"' if klass else ""
        body.append(f"<tr{attr}>" + "".join(cell(i, c) for i, c in enumerate(row)) + "</tr>")
    if not kept and not earlier and empty is not None:
        body.append(f'<tr><td class="hint" colspan="{n}">{esc(empty)}</td></tr>')
    head = "".join(cell(i, c, "th") for i, c in enumerate(columns))
    return (f'{CSS if style else ""}<div class="mlt-table"><table><caption>{esc(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def local_time(moment: str | float | None) -> str:
    """A moment as local date and time to the second: ``2026-12-03 14:15:02``.

    Parameters
    ----------
    moment : str, float or None
        An ISO 8601 string (as the store records), or seconds since the epoch.

    Returns
    -------
    str
        The local time to the second; ``-`` for None, and the text unchanged if it does not parse.

    Examples
    --------
    >>> local_time(None)
    '-'
    >>> len(local_time("2026-12-03T13:15:02.118203+00:00"))
    19
    """
    if moment is None:
        return "-"
    if isinstance(moment, str):
        try:
            parsed = _dt.datetime.fromisoformat(moment)
        except ValueError:
            return moment
        if parsed.tzinfo is None:  # naive: already local
            return parsed.strftime("%Y-%m-%d %H:%M:%S")
        return parsed.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(moment)))

