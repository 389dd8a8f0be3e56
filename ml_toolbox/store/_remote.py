"""The versioned store on object storage (``PipelinePersistence("s3://bucket/prefix")``).

The same store, the same manifests, aliases, signatures and checks, reached through
:class:`~ml_toolbox.store.objstore.FsspecBackend` instead of a directory. No lock service: what the
local store does under its file lock is done here by the object store's conditional writes.

Layout under the URL::

    ml_toolbox_store.json                 the store's marker (created only if absent)
    <name>/.kind                          what the name holds (created only if absent)
    <name>/objects/<digest>/artifact.*    artifacts, keyed by their digest (uploaded first)
    <name>/v000001/manifest.json          a version: its manifest, created only if absent (the commit)
    <name>/v000002.deleted                tombstone: version numbers are never reused
    <name>/aliases.json                   aliases and their chained, signed history (compare-and-swap)

A version is its manifest: the artifact is uploaded first, under its digest, then the manifest is created
with ``If-None-Match: *``. Two writers that pick the same number cannot both create it; the loser takes
the next number. A writer that dies before its manifest leaves an unreferenced artifact, never a version.
"""

import random
import re
import threading
import time

from ml_toolbox.store import _aliases
from ml_toolbox.store._store import (
    _FORMATS,
    _NAME_RE,
    STORE_FORMAT,
    STORE_MARKER,
    PipelinePersistence,
    _alias_bytes,
    _iso,
    _manifest_bytes,
    _parse_age,
)
from ml_toolbox.store.errors import IntegrityError, StoreError
from ml_toolbox.store.objstore import FsspecBackend, default_cache_dir

__all__ = ["ObjectStorePersistence"]

_LOCATION_RE = re.compile(r"objects/[0-9a-f]{16,128}")
_MOVES = threading.local()  # per thread, during an alias move: {id(store): {name: the alias file's first tag}}
_ATTEMPTS = 200  # conflicting saves or alias moves before giving up (each loser retries at once)
_now = time.monotonic  # the manifest_ttl clock (a test replaces this, not the time module's)


class _AliasConflict(StoreError):
    """Someone moved the alias file between this move's read and its compare-and-swap."""


class ObjectStorePersistence(PipelinePersistence):
    """:class:`PipelinePersistence` on an fsspec URL; made by ``PipelinePersistence("s3://...")``.

    Parameters beyond the local store's:

    storage_options : dict, optional
        Passed to fsspec (credentials, ``client_kwargs={"endpoint_url": ...}`` for S3-compatible stores).
    single_writer : bool, default=False
        Where the file system offers no conditional writes, declare that only one process writes.
    cache_dir : str, None or False
        Verified artifacts are cached here, keyed by digest (None: ``$ML_TOOLBOX_CACHE`` or
        ``~/.cache/ml_toolbox/store``; False: no cache). A cached copy is verified again at each load.
    retries : int, default=5
        Attempts of each object-store request on transient errors (timeouts, resets, 5xx, throttling).
    retry_timeout : float, default=60.0
        Seconds after which a request still failing is given up: a :class:`StoreError` names the URL and
        the operation, and the store is left as the last successful request left it.
    timeout : float, default=30.0
        Seconds a request may wait for the server's next bytes (or its connection) before it counts as
        failed (transient: retried as above): no store call waits forever on a lost answer.
    manifest_ttl : float, default=0
        Seconds for which a load by version *number* may take that version's manifest from this object's
        memory instead of asking the server again. A manifest never changes once created (create-only,
        signed, verified again at each load), so what a longer time risks is only this: a version deleted
        by another store object keeps loading here for up to ``manifest_ttl`` seconds. With a cache
        directory and ``manifest_ttl > 0`` a second load by number makes no request at all. Loads by
        alias or of the latest version always ask the server (aliases move).
    """

    def __init__(self, storage_dir, *, storage_options=None, single_writer=False, cache_dir=None, retries=5,
                 retry_timeout=60.0, timeout=30.0, manifest_ttl=0, **options):
        if isinstance(manifest_ttl, bool) or not isinstance(manifest_ttl, (int, float)) or manifest_ttl < 0:
            raise ValueError(f"manifest_ttl={manifest_ttl!r}: expected a number of seconds >= 0.")
        self.manifest_ttl = float(manifest_ttl)
        self._manifests = {}  # (name, number) -> (manifest bytes, _now() when read)
        backend = FsspecBackend(storage_dir, storage_options, single_writer=single_writer, retries=retries,
                                retry_timeout=retry_timeout, timeout=timeout)
        self._remote = (backend, cache_dir)
        super().__init__(storage_dir, **options)

    # -------------------------------------------------------------------------- construction
    def _setup_location(self, storage_dir):
        self._backend, cache_dir = self._remote
        self.path = self._root = self._backend.url
        self.cache_dir = None if cache_dir is False else (cache_dir or default_cache_dir())

    def _open(self):
        backend = self._backend
        try:
            backend.read(STORE_MARKER)
        except FileNotFoundError:
            entries = [e for e in backend.list("") if not e.startswith(".")]
            if entries:
                shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
                raise StoreError(f"{self._root!r} is not an ml_toolbox store (no {STORE_MARKER}; it holds {shown}). "
                                 "Give an empty or new prefix.") from None
            backend.create(STORE_MARKER, _alias_bytes(
                {"format": "ml_toolbox.store", "format_version": STORE_FORMAT, "created": _iso(self._clock()),
                 **({"signed": True} if self._key else {})}))
        if not backend.conditional and not backend.single_writer:
            import warnings

            warnings.warn(f"The store at {self._root!r} is read-only here: its file system offers no conditional "
                          "writes, so concurrent writers could not be kept apart. Pass single_writer=True if only "
                          "one process writes it.", UserWarning, stacklevel=3)
        self._mark_signed()

    def __repr__(self):
        signed = ", signed" if self._key else ""
        return f"PipelinePersistence(storage_dir={self._root!r}{signed})"

    # ----------------------------------------------------------------------- what a lock did
    def _lock(self):
        import contextlib

        return contextlib.nullcontext()  # conditional writes keep writers apart

    def _require_writable(self):
        self._backend._require_writer("write", "")

    def _make_durable(self, name, number):
        pass  # an acknowledged PUT is durable

    def _clean_locks(self):
        pass

    # --------------------------------------------------------------------------------- save
    def _staging_token(self):
        return ""  # no staging directory: the backend's staging keeps the artifact in memory

    def __getstate__(self):
        state = super().__getstate__()
        state["_manifests"] = {}
        return state

    def _manifest_data(self, name, number, for_load=False):
        """A load by number within ``manifest_ttl`` of the last read of that manifest answers from memory."""
        if not (for_load and self.manifest_ttl):
            return super()._manifest_data(name, number)
        now = _now()
        kept = self._manifests.get((name, number))
        if kept is not None and now - kept[1] < self.manifest_ttl:
            return kept[0]
        data = super()._manifest_data(name, number)
        if len(self._manifests) >= 4096:  # a bound on memory: forget everything, as a cache may
            self._manifests.clear()
        self._manifests[(name, number)] = (data, now)
        return data

    def _delete_locked(self, name, number):
        self._manifests.pop((name, number), None)
        return super()._delete_locked(name, number)

    # ----------------------------------------------------------------------------- layout
    def _artifact_key(self, name, number, manifest, filename):
        """Artifacts live under ``<name>/objects/<digest>/``, as the (signed) manifest's location says."""
        location = manifest.get("location")
        path = self._backend.url_of(f"{name}/v{number:06d}/manifest.json")
        if not isinstance(location, str) or not _LOCATION_RE.fullmatch(location):
            raise IntegrityError(f"The manifest {path!r} names no artifact location under objects/ "
                                 f"(found {location!r}); it was not loaded.", path, "objects/<digest>", location)
        super()._artifact_key(name, number, manifest, filename)  # the file name checked as on disk
        return f"{name}/{location}/{filename}"

    # ----------------------------------------------------------------------------- aliases
    def _write_aliases(self, name, payload, tag):
        if not self._backend.compare_and_swap(f"{name}/aliases.json", _alias_bytes(payload), tag):
            raise _AliasConflict(f"{self._backend.url_of(name + '/aliases.json')!r} changed while this move was "
                                 "decided; nothing was written.")

    def _read_aliases(self, name, tagged=False):
        payload, tag = super()._read_aliases(name, tagged=True)
        seen = getattr(_MOVES, "tags", None)
        if seen is not None and id(self) in seen:
            seen[id(self)].setdefault(name, tag)  # the state this move's decisions are based on
        return (payload, tag) if tagged else payload

    def _move_alias(self, name, alias, event, stack):
        """As on disk, but the compare-and-swap is against the alias file as the move *first* read it
        (its gates and its "from" came from that read), not as it is read just before writing."""
        self._require_key(f"move the alias {alias!r} of {name!r}")
        payload, tag = self._read_aliases(name, tagged=True)
        first = (getattr(_MOVES, "tags", None) or {}).get(id(self), {}).get(name, tag)
        if tag != first:
            raise _AliasConflict(f"{self._backend.url_of(name + '/aliases.json')!r} changed during this move.")
        self._check_movable(name, payload, event["to"])
        _aliases.append(payload, name, event, self._key)
        payload["aliases"].setdefault(alias, {})["stack"] = stack
        self._write_aliases(name, payload, tag)

    def _retry_moves(self, move, *args, **kwargs):
        """Run an alias move again (reading the alias file afresh) while another writer wins the race."""
        for attempt in range(_ATTEMPTS):
            _MOVES.tags = {id(self): {}}
            try:
                return move(*args, **kwargs)
            except _AliasConflict:
                time.sleep(random.uniform(0, min(0.2, 0.005 * (attempt + 1))))
            finally:
                _MOVES.tags = None
        raise StoreError(f"Gave up moving an alias of {args[0]!r} in {self._root!r}: {_ATTEMPTS} concurrent moves "
                         "won the race.")

    def promote(self, name, version, alias, *, gates=None, reason=None):
        return self._retry_moves(super().promote, name, version, alias, gates=gates, reason=reason)

    def rollback(self, name, alias, *, reason=None):
        return self._retry_moves(super().rollback, name, alias, reason=reason)

    def sign_aliases(self, name, *, reason=None):
        return self._retry_moves(super().sign_aliases, name, reason=reason)

    promote.__doc__ = PipelinePersistence.promote.__doc__
    rollback.__doc__ = PipelinePersistence.rollback.__doc__
    sign_aliases.__doc__ = PipelinePersistence.sign_aliases.__doc__

    # ------------------------------------------------------------------------------ delete
    def _mark_deleted(self, name, number):
        return self._retry_moves(super()._mark_deleted, name, number)

    def _clean_staging(self):
        return []

    # ------------------------------------------------------------------- unreferenced artifacts
    def unreferenced(self, name=None):
        """The artifacts that no version's manifest names.

        A writer that died after uploading its artifact and before creating its manifest leaves one (never
        a version); so does a deleted version, whose artifact is kept while another version may share it.
        They cannot be loaded and take only space: :meth:`clean_unreferenced` (and :meth:`prune`) removes
        them once they are old enough not to be a save still in progress.

        Parameters
        ----------
        name : str, optional
            One name; all names when omitted.

        Returns
        -------
        list of (str, str)
            ``(name, url)`` of each unreferenced artifact's folder, ``objects/<digest>``.
        """
        found = []
        for each in self._all_names() if name is None else [name]:
            referenced = set()
            for number in self.list_versions(each):
                location = self._read_manifest(each, number).get("location")
                if isinstance(location, str) and _LOCATION_RE.fullmatch(location):
                    referenced.add(location.split("/", 1)[1])
            for digest in self._backend.list(f"{each}/objects"):
                if digest not in referenced:
                    found.append((each, self._backend.url_of(f"{each}/objects/{digest}")))
        return found

    def clean_unreferenced(self, name=None, *, older_than="1h", dry_run=False):
        """Remove the artifacts no version names (see :meth:`unreferenced`) that are older than ``older_than``.

        Parameters
        ----------
        name : str, optional
            One name; all names when omitted.
        older_than : timedelta, float or str, default="1h"
            Keep artifacts uploaded more recently (days as a number, or '12h', '45m', '10s'): a save in
            progress has uploaded its artifact and not yet created its manifest. Give ``0`` only when no
            one else is writing.
        dry_run : bool, default=False
            Only say what would be removed.

        Returns
        -------
        list of str
            The URLs of the artifact folders removed (or, with ``dry_run``, that would be).
        """
        age = _parse_age(older_than)
        if not dry_run:
            self._require_writable()
        now = time.time()
        removed = []
        for each, url in self.unreferenced(name):
            folder = url[len(self._backend.url) + 1:]
            files = self._backend.list(folder)
            stamps = [self._backend.modified(f"{folder}/{f}") for f in files]
            if any(stamp is None or now - stamp < age.total_seconds() for stamp in stamps):
                continue
            if not dry_run:
                for f in files:
                    self._backend.delete(f"{folder}/{f}")
            removed.append(url)
        return removed

    def _all_names(self):
        return [entry for entry in self._backend.list("") if entry != STORE_MARKER and _NAME_RE.fullmatch(entry)]

    def prune(self, name=None, *, keep_last=None, older_than=None, dry_run=False):
        deleted = super().prune(name, keep_last=keep_last, older_than=older_than, dry_run=dry_run)
        if not dry_run:
            self.clean_unreferenced(name)
        return deleted

    prune.__doc__ = (PipelinePersistence.prune.__doc__ or "") + (
        "\n        On object storage, prune also removes the artifacts no version names that are more than an\n"
        "        hour old (see ``clean_unreferenced``).\n")

