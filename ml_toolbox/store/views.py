"""What a versioned store looks like to a person: the rows and tables shared by the CLI and displays.

The ``ml-toolbox`` CLI prints these tables in a terminal; :class:`StoreView` shows the same rows in a
notebook (``_repr_html_``) and through rich (``__rich__``).
"""

from __future__ import annotations

import json

from rich.table import Table

from ml_toolbox import _html
from ml_toolbox._html import local_time

__all__ = ["StoreView", "fmt", "size", "store_rows", "version_rows", "history_rows", "kind_of", "class_of",
           "local_time"]

STORE_COLUMNS = ("name", "versions", "latest", "kind", "created", "aliases")
VERSION_COLUMNS = ("version", "created", "size", "kind", "format", "metrics", "aliases", "message")
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


def kind_of(manifest):
    """What a version holds, as shown: ``pipeline``, ``estimator``, ``model``, ``state`` or ``config``.

    ``save`` records ``kind="pipeline"`` for whatever it is given; a bare estimator (anything whose class
    is not a pipeline) is shown as an ``estimator``.

    Parameters
    ----------
    manifest : dict
        A version's manifest.

    Returns
    -------
    str
        The kind shown in tables, notebooks and ``list --json``.

    Examples
    --------
    >>> kind_of({"kind": "pipeline", "object_type": "sklearn.linear_model._logistic.LogisticRegression"})
    'estimator'
    >>> kind_of({"kind": "pipeline", "object_type": "sklearn.pipeline.Pipeline"})
    'pipeline'
    """
    kind = manifest.get("kind") or "pipeline"
    if kind != "pipeline":
        return kind
    cls = class_of(manifest)
    return "pipeline" if cls is None or cls.endswith("Pipeline") else "estimator"


def class_of(manifest):
    """The class name of what a version holds (``LogisticRegression``), or None when not recorded.

    Parameters
    ----------
    manifest : dict
        A version's manifest.

    Returns
    -------
    str or None
        The last part of the manifest's ``object_type``.

    Examples
    --------
    >>> class_of({"object_type": "sklearn.linear_model._logistic.LogisticRegression"})
    'LogisticRegression'
    >>> class_of({}) is None
    True
    """
    object_type = manifest.get("object_type")
    return object_type.rsplit(".", 1)[-1] if object_type else None


def store_rows(store, names=None):
    """One row per name in the store (or in ``names``): versions, latest, kind, class, created, aliases.

    Parameters
    ----------
    store : PipelinePersistence
        The store.
    names : list of str, optional
        Only these names (default: every name).

    Returns
    -------
    list of dict
        ``name``, ``versions`` (a count), ``latest`` (a number), ``kind`` (see :func:`kind_of`), ``class``,
        ``created`` (ISO 8601, of the latest version) and ``aliases`` (an object alias -> number).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox import PipelinePersistence
    >>> store = PipelinePersistence(tempfile.mkdtemp())
    >>> store.save(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "churn", metrics={"accuracy": 0.91})
    1
    >>> [(r["name"], r["versions"]) for r in store_rows(store)]
    [('churn', 1)]
    """
    rows = []
    for name in store.names() if names is None else names:
        versions = store.list_versions(name)
        if not versions:
            continue
        latest = store.manifest(name, versions[-1])
        aliases = dict(sorted(store.aliases(name).items()))
        rows.append({"name": name, "versions": len(versions), "latest": versions[-1],
                     "kind": kind_of(latest), "class": class_of(latest), "created": latest.get("created"),
                     "aliases": aliases})
    return rows


def version_rows(store, name, last=None):
    """One row per version of ``name`` (or its ``last`` ones), oldest first.

    Parameters
    ----------
    store : PipelinePersistence
        The store.
    name : str
        The name.
    last : int, optional
        Only the latest ``last`` versions (their manifests only are read).

    Returns
    -------
    list of dict
        ``version``, ``created`` (ISO 8601), ``size`` (bytes), ``kind``, ``class``, ``format``, ``metrics``
        (an object), ``aliases`` (a list) and ``message``.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox import PipelinePersistence
    >>> store = PipelinePersistence(tempfile.mkdtemp())
    >>> store.save(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "churn", metrics={"accuracy": 0.91})
    1
    >>> [(r["version"], r["metrics"]) for r in version_rows(store, "churn")]
    [(1, {'accuracy': 0.91})]
    """
    by_version = {}
    for alias, number in store.aliases(name).items():
        by_version.setdefault(number, []).append(alias)
    numbers = store.list_versions(name)
    if last is not None:
        numbers = numbers[max(0, len(numbers) - last):]
    rows = []
    for number in numbers:
        manifest = store.manifest(name, number)
        rows.append({"version": number, "created": manifest.get("created"),
                     "size": sum(f["size"] for f in manifest["files"].values()),
                     "kind": kind_of(manifest), "class": class_of(manifest),
                     "format": manifest.get("format"), "metrics": manifest.get("metrics", {}),
                     "aliases": sorted(by_version.get(number, [])),
                     "message": manifest.get("message")})
    return rows


def history_rows(store, name, alias=None):
    """The audited alias history of ``name`` (oldest first).

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
        ``when`` (ISO 8601), ``alias``, ``action``, ``from``, ``to``, ``reason`` and ``gates`` (a list).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.dummy import DummyClassifier
    >>> from ml_toolbox import PipelinePersistence
    >>> store = PipelinePersistence(tempfile.mkdtemp())
    >>> v = store.save(DummyClassifier().fit([[0], [1]], [0, 1]), "m")
    >>> _ = store.promote("m", v, "production")
    >>> [(e["alias"], e["action"], e["to"]) for e in history_rows(store, "m")]
    [('production', 'promote', 1)]
    """
    return store.history(name, alias)


def _shown_kind(row):
    return f"estimator ({row['class']})" if row.get("kind") == "estimator" and row.get("class") else \
        fmt(row.get("kind"))


def _cells(kind, row):
    if kind == "store":
        aliases = ", ".join(f"{a}->{v}" for a, v in row["aliases"].items())
        return [fmt(row["name"]), fmt(row["versions"]), fmt(row["latest"]), _shown_kind(row),
                local_time(row["created"]), aliases]
    if kind == "versions":
        metrics = ", ".join(f"{k}={fmt(v)}" for k, v in sorted(row["metrics"].items()))
        return [str(row["version"]), local_time(row["created"]), size(row["size"]), _shown_kind(row),
                fmt(row["format"]), metrics, ", ".join(row["aliases"]), fmt(row["message"])]
    return [local_time(row["when"]), row["alias"], row["action"], fmt(row["from"]), fmt(row["to"]),
            fmt(row.get("reason")), ", ".join(row.get("gates") or [])]


_COLUMNS = {"store": STORE_COLUMNS, "versions": VERSION_COLUMNS, "history": HISTORY_COLUMNS}
_NUMERIC = {"store": (1, 2), "versions": (0, 2), "history": (3, 4)}
_HIDDEN = {"store": "more names", "versions": "earlier versions", "history": "earlier alias changes"}


def table(kind, title, rows, empty="(nothing yet)", total=None):
    """A rich :class:`~rich.table.Table` of ``rows``.

    Parameters
    ----------
    kind : {"store", "versions", "history"}
        Which rows (:func:`store_rows`, :func:`version_rows`, :func:`history_rows`).
    title : str
        The table's title.
    rows : list of dict
        The rows.
    empty : str, default="(nothing yet)"
        The caption when there are no rows.
    total : int, optional
        How many rows there are in all when ``rows`` are the latest of them: the caption counts the
        others.

    Returns
    -------
    rich.table.Table
        The table.
    """
    out = Table(title=title)
    for i, col in enumerate(_COLUMNS[kind]):
        out.add_column(col, overflow="fold", justify="right" if i in _NUMERIC[kind] else "left")
    for row in rows:
        out.add_row(*_cells(kind, row))
    if not rows:
        out.caption = empty
    hidden = 0 if total is None else total - len(rows)
    if hidden > 0:
        out.caption = f"{hidden:,} {_HIDDEN[kind]} not shown"
    return out


def html_table(kind, title, rows, empty="(nothing yet)", total=None, style=True):
    """The same table as HTML, for notebooks: scoped CSS, the latest rows and a count of the others.

    Parameters
    ----------
    kind : {"store", "versions", "history"}
        Which rows.
    title : str
        The caption.
    rows : list of dict
        The rows shown.
    empty : str, default="(nothing yet)"
        The line shown when there are no rows.
    total : int, optional
        How many rows there are in all (default ``len(rows)``).
    style : bool, default=True
        Start with the scoped ``<style>``.

    Returns
    -------
    str
        The HTML.
    """
    return _html.table(title, _COLUMNS[kind], [_cells(kind, row) for row in rows], numeric=_NUMERIC[kind],
                       total=total, hidden=_HIDDEN[kind], empty=empty, style=style)


class StoreView:
    """A store, or one name in it, as a person looks at it: rich in a terminal, HTML in a notebook.

    ``PipelinePersistence`` displays itself through one (the names it holds); ``store.show(name)``
    gives the versions of ``name`` and its alias history. A large store stays a small page: each table
    shows its latest :attr:`html_rows` rows and counts the others (``ml-toolbox list`` and
    ``ml-toolbox history`` list them all). Times are local, to the second.

    Parameters
    ----------
    store : PipelinePersistence
        The store.
    name : str, default=None
        None shows the store's names; a name shows its versions and alias history.

    Attributes
    ----------
    html_rows : int, default=50
        How many rows (names, latest versions, latest alias changes) each table shows.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ml_toolbox.persistence import PipelinePersistence
    >>> store = PipelinePersistence(tempfile.mkdtemp())
    >>> _ = store.save(LogisticRegression(), "churn")
    >>> "estimator (LogisticRegression)" in store.show("churn")._repr_html_()
    True
    """

    html_rows = 50

    def __init__(self, store, name=None):
        self.store = store
        self.name = name

    def _parts(self):
        limit = max(0, int(self.html_rows))
        if self.name is None:
            names = self.store.names()
            return [("store", f"Store {self.store.path}", store_rows(self.store, names[:limit]),
                     "(empty store)", len(names))]
        n = len(self.store.list_versions(self.name))
        history = history_rows(self.store, self.name)
        return [("versions", f"{self.name}: {n} version(s)", version_rows(self.store, self.name, last=limit),
                 "(no versions)", n),
                ("history", f"{self.name}: alias history", history[max(0, len(history) - limit):],
                 "(no alias set yet)", len(history))]

    def __rich__(self):
        from rich.console import Group

        return Group(*(table(kind, title, rows, empty, total)
                       for kind, title, rows, empty, total in self._parts()))

    def _repr_html_(self):
        return "".join(html_table(kind, title, rows, empty, total, style=i == 0)
                       for i, (kind, title, rows, empty, total) in enumerate(self._parts()))

    def __repr__(self):
        target = "" if self.name is None else f", name={self.name!r}"
        return f"StoreView({str(self.store.path)!r}{target})"
