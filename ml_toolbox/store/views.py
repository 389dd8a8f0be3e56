"""What a versioned store looks like to a person: the rows and tables shared by the CLI and displays.

The ``ml-toolbox`` CLI prints these tables in a terminal; :class:`StoreView` shows the same rows in a
notebook (``_repr_html_``) and through rich (``__rich__``).
"""

from __future__ import annotations

import html
import json

from rich.table import Table

__all__ = ["StoreView", "fmt", "size", "store_rows", "version_rows", "history_rows"]

STORE_COLUMNS = ("name", "versions", "latest", "kind", "created", "aliases")
VERSION_COLUMNS = ("version", "created", "size", "format", "metrics", "aliases", "message")
HISTORY_COLUMNS = ("when", "alias", "action", "from", "to", "reason", "gates")


def fmt(value):
    """Return a cell's text: ``-`` for None, 6 significant digits for floats, JSON for containers.

    Parameters
    ----------
    value : object
        The cell's value.

    Returns
    -------
    str
        Its text.

    Examples
    --------
    >>> fmt(None), fmt(0.123456789), fmt({"a": 1})
    ('-', '0.123457', '{"a": 1}')
    """
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def size(n):
    """Return a byte count as text, ``1.2 MB``-style.

    Parameters
    ----------
    n : int or None
        The number of bytes.

    Returns
    -------
    str
        The size with a unit.

    Examples
    --------
    >>> size(1234567)
    '1.2 MB'
    """
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def store_rows(store):
    """Return one row per name in the store: versions, latest, kind, created, aliases.

    Parameters
    ----------
    store : PipelinePersistence
        The store.

    Returns
    -------
    list of dict
        The rows (what ``ml-toolbox list --json`` prints).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox import PipelinePersistence
    >>> store = PipelinePersistence(tempfile.mkdtemp())
    >>> store.save(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "churn", metrics={"accuracy": 0.91})
    1
    >>> store.promote("churn", 1, "production")
    1
    >>> [(r["name"], r["versions"], r["kind"]) for r in store_rows(store)]
    [('churn', 1, 'pipeline')]
    """
    rows = []
    for name in store.names():
        versions = store.list_versions(name)
        if not versions:
            continue
        latest = store.manifest(name, versions[-1])
        aliases = ", ".join(f"{a}->{v}" for a, v in sorted(store.aliases(name).items()))
        rows.append({"name": name, "versions": len(versions), "latest": versions[-1],
                     "kind": latest.get("kind"), "created": latest.get("created"),
                     "aliases": aliases})
    return rows


def version_rows(store, name):
    """Return one row per version of a name: created, size, format, metrics, aliases, message.

    Parameters
    ----------
    store : PipelinePersistence
        The store.
    name : str
        The name.

    Returns
    -------
    list of dict
        The rows, oldest version first.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox import PipelinePersistence
    >>> store = PipelinePersistence(tempfile.mkdtemp())
    >>> store.save(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "churn", metrics={"accuracy": 0.91})
    1
    >>> store.promote("churn", 1, "production")
    1
    >>> [(r["version"], r["metrics"], r["aliases"]) for r in version_rows(store, "churn")]
    [(1, {'accuracy': 0.91}, ['production'])]
    """
    by_version = {}
    for alias, number in store.aliases(name).items():
        by_version.setdefault(number, []).append(alias)
    rows = []
    for manifest in store.manifests(name):
        number = manifest["version"]
        rows.append({"version": number, "created": manifest.get("created"),
                     "size": sum(f["size"] for f in manifest["files"].values()),
                     "format": manifest.get("format"), "metrics": manifest.get("metrics", {}),
                     "aliases": sorted(by_version.get(number, [])),
                     "message": manifest.get("message")})
    return rows


def history_rows(store, name, alias=None):
    """Return the audited alias history of a name, oldest first, as display rows.

    Parameters
    ----------
    store : PipelinePersistence
        The store.
    name : str
        The name.
    alias : str, optional
        Only this alias's events.

    Returns
    -------
    list of dict
        The events: ``when``, ``alias``, ``action``, ``from``, ``to``, ``reason``...

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox import PipelinePersistence
    >>> store = PipelinePersistence(tempfile.mkdtemp())
    >>> store.save(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "churn", metrics={"accuracy": 0.91})
    1
    >>> store.promote("churn", 1, "production")
    1
    >>> [(e["action"], e["alias"], e["to"]) for e in history_rows(store, "churn")]
    [('promote', 'production', 1)]
    """
    return store.history(name, alias)


def _cells(kind, row):
    if kind == "store":
        return [fmt(row[c]) for c in STORE_COLUMNS]
    if kind == "versions":
        metrics = ", ".join(f"{k}={fmt(v)}" for k, v in sorted(row["metrics"].items()))
        return [str(row["version"]), fmt(row["created"]), size(row["size"]), fmt(row["format"]),
                metrics, ", ".join(row["aliases"]), fmt(row["message"])]
    return [row["when"], row["alias"], row["action"], fmt(row["from"]), fmt(row["to"]),
            fmt(row.get("reason")), ", ".join(row.get("gates") or [])]


_COLUMNS = {"store": STORE_COLUMNS, "versions": VERSION_COLUMNS, "history": HISTORY_COLUMNS}


def table(kind, title, rows, empty="(nothing yet)"):
    """A rich :class:`~rich.table.Table` of ``rows`` (``kind``: store, versions or history)."""
    out = Table(title=title)
    for col in _COLUMNS[kind]:
        out.add_column(col, overflow="fold")
    for row in rows:
        out.add_row(*_cells(kind, row))
    if not rows:
        out.caption = empty
    return out


def html_table(kind, title, rows, empty="(nothing yet)"):
    """The same table as HTML, for notebooks."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in _COLUMNS[kind])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in _cells(kind, row))
                   + "</tr>" for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(_COLUMNS[kind])}"><i>{html.escape(empty)}</i></td></tr>'
    return (f"<table><caption style='text-align:left'><b>{html.escape(title)}</b></caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


class StoreView:
    """A store, or one name in it, as a person looks at it: rich in a terminal, HTML in a notebook.

    ``PipelinePersistence`` displays itself through one (the names it holds); ``store.show(name)``
    gives the versions of ``name`` and its alias history.

    Parameters
    ----------
    store : PipelinePersistence
        The store.
    name : str, default=None
        None shows the store's names; a name shows its versions and alias history.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox import PipelinePersistence
    >>> store = PipelinePersistence(tempfile.mkdtemp())
    >>> store.save(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "churn", metrics={"accuracy": 0.91})
    1
    >>> store.promote("churn", 1, "production")
    1
    >>> "<table" in StoreView(store, "churn")._repr_html_()
    True
    """

    def __init__(self, store, name=None):
        self.store = store
        self.name = name

    def _parts(self):
        if self.name is None:
            return [("store", f"Store {self.store.path}", store_rows(self.store), "(empty store)")]
        return [("versions", f"{self.name}: {len(self.store.list_versions(self.name))} version(s)",
                 version_rows(self.store, self.name), "(no versions)"),
                ("history", f"{self.name}: alias history", history_rows(self.store, self.name),
                 "(no alias set yet)")]

    def __rich__(self):
        from rich.console import Group

        return Group(*(table(kind, title, rows, empty) for kind, title, rows, empty in self._parts()))

    def _repr_html_(self):
        return "".join(html_table(kind, title, rows, empty)
                       for kind, title, rows, empty in self._parts())

    def __repr__(self):
        target = "" if self.name is None else f", name={self.name!r}"
        return f"StoreView({str(self.store.path)!r}{target})"
