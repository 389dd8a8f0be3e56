"""The store's commands of ``ml-toolbox``: list, show, history, diff, promote, rollback, delete, prune,
verify. :mod:`ml_toolbox.cli` registers them with :func:`add_commands` and opens the store with
:func:`open_store`.
"""

import argparse
import json
import os

from rich.table import Table

from ml_toolbox import _argtypes as argtypes
from ml_toolbox._cliout import fit, print_json

from ml_toolbox.store._store import PipelinePersistence, StoreError
from ml_toolbox.store.objstore import FsspecBackend, is_url
from ml_toolbox.store.views import fmt as _fmt
from ml_toolbox._html import local_time
from ml_toolbox.store.views import class_of, history_rows, kind_of, store_rows, version_rows
from ml_toolbox.store.views import table as view_table

__all__ = ["add_commands", "add_store_options", "open_store"]

EXIT_OK, EXIT_REFUSED = 0, 1


def _version_arg(text):
    return int(text) if text.isdigit() else text


def add_store_options(parser, suppress=False):
    """Add the options that open a store: --store, --signing-key and the format policy.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
        Where to add them.
    suppress : bool, default=False
        Give every option the default :data:`argparse.SUPPRESS` (a sub-command's copy: a value given
        there overrides the main parser's, and no value leaves it alone).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_store_options(parser)
    >>> args = parser.parse_args(["--store", "models", "--formats", "skops"])
    >>> args.store, args.formats, args.no_pickle
    ('models', ('skops',), False)
    """
    unset = argparse.SUPPRESS if suppress else None
    parser.add_argument("--store", default=argparse.SUPPRESS if suppress else os.environ.get("ML_TOOLBOX_STORE"),
                        help="the store directory, or a URL such as s3://bucket/prefix (default: $ML_TOOLBOX_STORE; fsspec options as JSON in $ML_TOOLBOX_STORAGE_OPTIONS)")
    parser.add_argument("--signing-key", default=unset,
                        help="HMAC key; default $ML_TOOLBOX_SIGNING_KEY. With a key, unsigned versions and alias "
                             "histories fail verify; a signed store needs it to promote, roll back, delete, prune.")
    parser.add_argument("--no-pickle", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="refuse every pickle (joblib) artifact, whatever its manifest says: verify reports them")
    parser.add_argument("--formats", default=unset, metavar="LIST", type=argtypes.formats,
                        help="comma-separated artifact formats allowed (joblib,skops); others are refused")


def add_commands(sub):
    """Add the store's sub-commands to the CLI's parser.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The sub-command parsers (``parser.add_subparsers()``).

    Returns
    -------
    dict
        Sub-command name -> the function that carries it out.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> commands = add_commands(parser.add_subparsers(dest="command"))
    >>> "list" in commands and "promote" in commands
    True
    """
    p = sub.add_parser("list", help="names in the store, or the versions of one name")
    p.add_argument("name", nargs="?")
    p = sub.add_parser("show", help="the manifest of one version")
    p.add_argument("name")
    p.add_argument("version", nargs="?", type=_version_arg, help="number or alias (default: latest)")
    p = sub.add_parser("history", help="the audited alias history of a name")
    p.add_argument("name")
    p.add_argument("alias", nargs="?")
    p = sub.add_parser("diff", help="changed params, metrics and schema between two versions")
    p.add_argument("name")
    p.add_argument("a", type=_version_arg)
    p.add_argument("b", type=_version_arg)
    p = sub.add_parser("promote", help="point an alias at a version, if the gates pass")
    p.add_argument("name")
    p.add_argument("version", type=_version_arg)
    p.add_argument("alias")
    p.add_argument("--gate", action="append", default=[], metavar="EXPR", type=argtypes.gate,
                   help="e.g. 'accuracy>=0.85', 'log_loss<=current', 'accuracy>=current-0.01' (repeatable)")
    p.add_argument("--reason")
    p = sub.add_parser("rollback", help="move an alias back one step")
    p.add_argument("name")
    p.add_argument("alias")
    p.add_argument("--reason")
    p = sub.add_parser("delete", help="delete one version (refused while an alias points at it)")
    p.add_argument("name")
    p.add_argument("version", type=_version_arg)
    p = sub.add_parser("prune", help="delete old versions, never aliased ones")
    p.add_argument("name", nargs="?")
    p.add_argument("--keep-last", type=argtypes.non_negative_int, metavar="N")
    p.add_argument("--older-than", type=argtypes.age, metavar="AGE", help="age such as 30d, 12h, 45m, 10s")
    p.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("verify", help="check sizes, digests, signatures and alias histories without loading")
    p.add_argument("name", nargs="?")
    p.add_argument("version", nargs="?", type=_version_arg)
    return dict(_COMMANDS)


def open_store(args, usage_error):
    """Open the store the command line names (never create one).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line: ``store``, ``signing_key``, ``no_pickle``, ``formats``.
    usage_error : callable
        Makes the exception for a usage error (exit code 2) from a message and a hint.

    Returns
    -------
    PipelinePersistence
        The store.

    Raises
    ------
    StoreError
        When the location is missing, not a directory, or not an ml_toolbox store.

    Examples
    --------
    >>> import argparse, tempfile
    >>> from ml_toolbox import PipelinePersistence
    >>> root = str(PipelinePersistence(tempfile.mkdtemp()).storage_dir)
    >>> args = argparse.Namespace(store=root, signing_key=None, no_pickle=False, formats=None)
    >>> open_store(args, ValueError).names()
    []
    """
    if not args.store:
        raise usage_error("ml-toolbox: error: no store given (use --store DIR or set ML_TOOLBOX_STORE)", "")
    formats = args.formats  # a tuple (argtypes.formats) or None
    if is_url(args.store):  # s3://bucket/prefix: fsspec options (endpoint, credentials) from the environment
        try:
            options = json.loads(os.environ.get("ML_TOOLBOX_STORAGE_OPTIONS") or "{}")
        except ValueError as exc:
            raise usage_error(f"ml-toolbox: error: $ML_TOOLBOX_STORAGE_OPTIONS is not JSON ({exc})", "") from None
        try:  # the command line opens stores; it never creates one
            FsspecBackend(args.store, options).read("ml_toolbox_store.json")
        except FileNotFoundError:
            raise StoreError(f"{args.store!r} is not an ml_toolbox store (no ml_toolbox_store.json).") from None
        return PipelinePersistence(args.store, storage_options=options, signing_key=args.signing_key,
                                   allow_pickle=not args.no_pickle, formats=formats)
    if not os.path.isdir(args.store):
        kind = "a file, not a directory" if os.path.exists(args.store) else "missing"
        raise StoreError(f"The store {args.store!r} is {kind}.")
    if not os.path.isfile(os.path.join(args.store, "ml_toolbox_store.json")):
        raise StoreError(f"{args.store!r} is not an ml_toolbox store (no ml_toolbox_store.json).")
    return PipelinePersistence(args.store, signing_key=args.signing_key, allow_pickle=not args.no_pickle,
                               formats=formats)


def _cmd_list(store, args, out):
    if args.name is None:
        rows = store_rows(store)
        if args.json:
            print_json(out, rows)
            return EXIT_OK
        out.print(fit(view_table("store", f"Store {store.path}", rows, "(empty store)"), out.width))
        return EXIT_OK
    if not store.list_versions(args.name):
        raise store._missing(args.name)
    rows = version_rows(store, args.name)
    if args.json:
        print_json(out, rows)
        return EXIT_OK
    out.print(fit(view_table("versions", f"{args.name}: {len(rows)} version(s)", rows), out.width))
    return EXIT_OK


def _cmd_show(store, args, out):
    manifest = store.manifest(args.name, args.version)
    if args.json:
        print_json(out, manifest)
        return EXIT_OK
    table = Table(title=f"{args.name} version {manifest['version']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    aliases = [a for a, v in store.aliases(args.name).items() if v == manifest["version"]]
    for key in ("version", "created", "kind", "object_type", "format", "compress", "parent", "message", "run_id"):
        if key == "created":
            table.add_row(key, local_time(manifest.get(key)))
        elif key == "kind":  # a bare estimator saved with save() is an estimator, not a pipeline
            kind = kind_of(manifest)
            table.add_row(key, f"{kind} ({class_of(manifest)})" if kind == "estimator" else kind)
        else:
            table.add_row(key, _fmt(manifest.get(key)))
    table.add_row("aliases", ", ".join(sorted(aliases)) or "-")
    table.add_row("signed", "yes" if manifest.get("signature") else "no")
    for filename, info in manifest["files"].items():
        digests = ", ".join(f"{a} {info[a]}" for a in ("blake3", "sha256", "xxh3_128") if a in info)
        table.add_row(f"file {filename}", f"{info['size']} bytes, {digests}")
    for section in ("metrics", "tags", "environment", "params", "schema"):
        values = manifest.get(section) or {}
        if isinstance(values, dict):
            for key, value in sorted(values.items()):
                table.add_row(f"{section}.{key}", _fmt(value))
        else:
            table.add_row(section, _fmt(values))
    out.print(fit(table, out.width))
    return EXIT_OK


def _cmd_history(store, args, out):
    events = history_rows(store, args.name, args.alias)
    if args.json:
        print_json(out, events)
        return EXIT_OK
    out.print(fit(view_table("history", f"{args.name}: alias history", events, "(no alias set yet)"), out.width))
    return EXIT_OK


def _cmd_diff(store, args, out):
    changes = store.diff(args.name, args.a, args.b)
    a, b = store.resolve(args.name, args.a), store.resolve(args.name, args.b)
    if args.json:
        print_json(out, {s: {k: list(v) for k, v in c.items()} for s, c in changes.items()})
        return EXIT_OK
    table = Table(title=f"{args.name}: version {a} -> {b}")
    for col in ("section", "key", f"v{a}", f"v{b}"):
        table.add_column(col, overflow="fold")
    for section, items in changes.items():
        for key, (left, right) in items.items():
            table.add_row(section, key, _fmt(left), _fmt(right))
    if not any(changes.values()):
        table.caption = "no differences in params, metrics, schema, tags or environment"
    out.print(fit(table, out.width))
    return EXIT_OK


def _cmd_promote(store, args, out):
    number = store.promote(args.name, args.version, args.alias, gates=args.gate or None, reason=args.reason)
    if args.json:
        print_json(out, {"name": args.name, "alias": args.alias, "version": number, "gates": args.gate})
        return EXIT_OK
    gates = f" (gates passed: {', '.join(args.gate)})" if args.gate else ""
    out.print(f"{args.alias} -> {args.name} version {number}{gates}")
    return EXIT_OK


def _cmd_rollback(store, args, out):
    before = store.aliases(args.name).get(args.alias)
    number = store.rollback(args.name, args.alias, reason=args.reason)
    if args.json:
        print_json(out, {"name": args.name, "alias": args.alias, "from": before, "to": number})
        return EXIT_OK
    out.print(f"{args.alias} of {args.name}: version {before} -> {number}")
    return EXIT_OK


def _cmd_delete(store, args, out):
    number = store.delete_version(args.name, args.version)
    if args.json:
        print_json(out, {"name": args.name, "deleted": number})
        return EXIT_OK
    out.print(f"deleted {args.name} version {number}")
    return EXIT_OK


def _cmd_prune(store, args, out):
    deleted = store.prune(args.name, keep_last=args.keep_last, older_than=args.older_than, dry_run=args.dry_run)
    if args.json:
        print_json(out, [{"name": name, "version": number} for name, number in deleted])
        return EXIT_OK
    verb = "would delete" if args.dry_run else "deleted"
    out.print(f"prune: {verb} {len(deleted)} version(s)")
    table = Table()
    table.add_column("name")
    table.add_column("version")
    for name, number in deleted:
        table.add_row(name, str(number))
    out.print(fit(table, out.width))
    return EXIT_OK


def _cmd_verify(store, args, out):
    results = store.verify(args.name, args.version)
    bad = [r for r in results if r[2] is not None]
    if args.json:
        print_json(out, [{"name": n, "version": v, "ok": p is None, "problem": p} for n, v, p in results])
    else:
        out.print(f"verify: {len(results) - len(bad)} sound, {len(bad)} failed")
        table = Table()
        for col in ("name", "version", "status", "problem"):
            table.add_column(col, overflow="fold")
        for name, number, problem in results:
            table.add_row(name, str(number), "[green]ok[/]" if problem is None else "[red]FAILED[/]", problem or "")
        out.print(fit(table, out.width))
    return EXIT_REFUSED if bad else EXIT_OK


_COMMANDS = {"list": _cmd_list, "show": _cmd_show, "history": _cmd_history, "diff": _cmd_diff,
             "promote": _cmd_promote, "rollback": _cmd_rollback, "delete": _cmd_delete, "prune": _cmd_prune,
             "verify": _cmd_verify}
