"""``ml-toolbox runs ...``: the run store from the shell.

Every sub-command takes ``--json``; tables are drawn by rich. The store is ``--runs DIR`` or
``$ML_TOOLBOX_RUNS``. Exit codes as for the rest of ``ml-toolbox``: 0 done, 1 refused (an unknown
run, metric or filter: the message lists what exists), 2 bad usage.

Examples
--------
::

    ml-toolbox runs --runs runs/ list --status success --since 7d --tag team=risk
    ml-toolbox runs show 3f2a9c
    ml-toolbox runs compare 3f2a9c 81be07
    ml-toolbox runs leaderboard --metric validation_score
    ml-toolbox runs report churn --days 7
    ml-toolbox runs active
    ml-toolbox runs archive --older-than 30d
    ml-toolbox runs note 3f2a9c "baseline for the Q4 review"
"""

from __future__ import annotations

import argparse
import os

from ml_toolbox import _argtypes as argtypes
from ml_toolbox._cliout import fit, print_json
from ml_toolbox.runs._active import STATUSES

from ml_toolbox.runs.store import RunNotFoundError, RunStore, RunStoreError
from ml_toolbox.runs.views import RunTable, fmt, run_table, runs_table, took, when

__all__ = ["add_parser", "run"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
# The fields of the run store's records that hold wall-clock times (seconds since the epoch): --json
# prints them as ISO 8601 (docs/cli.md, "JSON output").
TIME_FIELDS = ("start", "end", "heartbeat", "time", "start_time")


def add_parser(sub):
    """Add the ``runs`` command group to ``ml-toolbox``'s sub-parsers.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The sub-command parsers of ``ml-toolbox`` (``parser.add_subparsers()``).

    Returns
    -------
    argparse.ArgumentParser
        The ``runs`` parser, with its own sub-commands (``list``, ``show``, ``compare``...).

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="ml-toolbox")
    >>> runs = add_parser(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["runs", "list"]).runs_command
    'list'
    """
    runs = sub.add_parser("runs", help="recorded runs: list, show, compare, report, leaderboard...")
    cmds = runs.add_subparsers(dest="runs_command", metavar="RUNS_COMMAND",
                               parser_class=sub._parser_class)
    cmds.required = True

    def json_flag(p):  # --runs and --json: ml_toolbox.cli adds them to every parser of the group
        return p

    p = json_flag(cmds.add_parser("list", help="runs, most recent first"))
    p.add_argument("--name")
    p.add_argument("--status", action="append", type=argtypes.choice(*STATUSES), metavar="STATUS",
                   help="running, success, failed, cancelled, stale (repeatable)")
    p.add_argument("--since", type=argtypes.since, help="an age (7d, 12h, 30m) or an ISO date")
    p.add_argument("--tag", action="append", help="key=value or key (repeatable)")
    p.add_argument("--kind")
    p.add_argument("--archived", action="store_true", help="archived runs only")
    p.add_argument("--all", action="store_true", help="live and archived runs")
    p.add_argument("--limit", type=argtypes.positive_int, default=50)
    p = json_flag(cmds.add_parser("show", help="one run: parameters, metrics, stages, lineage"))
    p.add_argument("run_id")
    p = json_flag(cmds.add_parser("compare", help="runs side by side, differences highlighted"))
    p.add_argument("run_ids", nargs="+")
    p = json_flag(cmds.add_parser("history", help="the runs of one pipeline, oldest first"))
    p.add_argument("name")
    p.add_argument("--since", type=argtypes.since)
    p = json_flag(cmds.add_parser("anomalies", help="stage runs far outside their history"))
    p.add_argument("name")
    p.add_argument("--days", type=argtypes.positive_float)
    p.add_argument("--threshold", type=argtypes.positive_float)
    p = json_flag(cmds.add_parser("report", help="P50/P95/P99, success rate, throughput, trend"))
    p.add_argument("name")
    p.add_argument("--days", type=argtypes.positive_float, default=7.0)
    p = json_flag(cmds.add_parser("leaderboard", help="finished runs ranked by a metric"))
    p.add_argument("--metric", required=True)
    p.add_argument("--name")
    p.add_argument("--top", type=argtypes.positive_int, default=10)
    p.add_argument("--direction", choices=("max", "min"))
    json_flag(cmds.add_parser("active", help="runs in progress, with their progress"))
    p = json_flag(cmds.add_parser("archive", help="archive finished / failed / stale runs"))
    p.add_argument("--older-than", default="30d", type=_archive_age,
                   help="an age such as 30d, 12h (default 30d)")
    p.add_argument("--status", action="append", type=argtypes.choice(*STATUSES[1:]), metavar="STATUS",
                   help="success, failed, cancelled, stale (repeatable)")
    p.add_argument("--dry-run", action="store_true")
    p = json_flag(cmds.add_parser("note", help="add a free-text note to a run"))
    p.add_argument("run_id")
    p.add_argument("text")
    p = json_flag(cmds.add_parser("plot", help="draw a metric across runs into an image file"))
    p.add_argument("metric")
    p.add_argument("run_ids", nargs="*")
    p.add_argument("--name")
    p.add_argument("--out", required=True, help="the image file to write (png, svg, pdf)")
    return runs


def _archive_age(text):
    """``archive --older-than``: an age such as 30d, or a number of days (``0``: every finished run)."""
    try:
        return argtypes.non_negative_float(text)
    except argparse.ArgumentTypeError:
        return argtypes.since(text)


def _store(args):
    path = args.runs_dir or os.environ.get("ML_TOOLBOX_RUNS")
    if not path:
        raise RunStoreError("No run store given: use 'ml-toolbox runs --runs DIR ...' or set "
                            "$ML_TOOLBOX_RUNS.")
    return RunStore(path)


def run(args, out, err):
    """Carry out a parsed ``runs`` command.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.
    out, err : rich.console.Console
        Where results and errors go.

    Returns
    -------
    int
        The exit code: 0 done, 1 refused.

    Examples
    --------
    >>> import io, tempfile
    >>> from rich.console import Console
    >>> from ml_toolbox.cli import build_parser
    >>> args = build_parser().parse_args(["runs", "--runs", tempfile.mkdtemp(), "list", "--json"])
    >>> out = Console(file=io.StringIO(), width=200)
    >>> run(args, out, out)  # nothing recorded there yet: refused, exit code 1
    1
    >>> "No run store" in out.file.getvalue()
    True
    """
    as_json = args.json
    try:
        store = _store(args)
        result = _COMMANDS[args.runs_command](store, args)
    except (RunNotFoundError, RunStoreError, ValueError, TypeError, ImportError) as exc:
        err.print(f"ml-toolbox runs: refused: {exc}", markup=False, highlight=False)
        return EXIT_REFUSED
    if as_json:
        print_json(out, result.to_dict() if hasattr(result, "to_dict") else result, times=TIME_FIELDS)
    elif isinstance(result, str):
        out.print(result, markup=False, highlight=False)
    else:
        out.print(fit(result, out.width))
    return EXIT_OK


def _list(store, args):
    archived = None if args.all else (True if args.archived else False)
    runs = store.runs(args.name, status=args.status, since=args.since, tag=args.tag,
                      kind=args.kind, archived=archived, limit=args.limit)
    return runs_table(runs, f"{len(runs)} runs in {store.file}")


def _show(store, args):
    record = store.get(args.run_id)
    history = {k: store.metric_history(record.id, k) for k in store.metric_names(record.id)}
    return run_table(record, store.stages(record.id), history)


def _compare(store, args):
    return store.compare(*args.run_ids)


def _history(store, args):
    return runs_table(store.history(args.name, since=args.since), f"history of {args.name!r}")


def _anomalies(store, args):
    options = {} if args.threshold is None else {"threshold": args.threshold}
    found = store.anomalies(args.name, days=args.days, **options)
    rows = [[a.pipeline_name, a.stage_name, a.mode, str(a.run_id), when(a.start_time),
             took(a.duration), took(a.median), fmt(a.score), a.reason] for a in found]
    return RunTable(f"{len(found)} anomalous stage runs of {args.name!r}",
                    ("pipeline", "stage", "mode", "run", "start", "duration", "median", "score",
                     "reason"), rows,
                    data=[{"pipeline": a.pipeline_name, "stage": a.stage_name, "mode": a.mode,
                           "run": a.run_id, "start": a.start_time, "duration": a.duration,
                           "median": a.median, "score": a.score, "reason": a.reason}
                          for a in found])


def _report(store, args):
    return store.report(args.name, days=args.days)


def _leaderboard(store, args):
    runs = store.leaderboard(args.metric, name=args.name, top=args.top, direction=args.direction)
    rows = [[str(i + 1), r.id[:12], r.name, fmt(r.metrics.get(args.metric)), when(r.start),
             ", ".join(f"{v['name']} v{v['version']}" for v in r.versions) or "-"]
            for i, r in enumerate(runs)]
    return RunTable(f"leaderboard on {args.metric}", ("rank", "id", "name", args.metric,
                                                      "start", "versions"), rows,
                    data=[{"rank": i + 1, "id": r.id, "name": r.name,
                           args.metric: r.metrics.get(args.metric), "params": r.params,
                           "versions": r.versions} for i, r in enumerate(runs)])


def _active(store, args):
    return runs_table(store.active(), "active runs")


def _archive(store, args):
    ids = store.archive(args.older_than, status=args.status, dry_run=args.dry_run)
    verb = "would archive" if args.dry_run else "archived"
    return RunTable(f"{verb} {len(ids)} runs", ("id",), [[i[:12]] for i in ids],
                    data={"archived": ids, "dry_run": args.dry_run})


def _note(store, args):
    notes = store.note(args.run_id, args.text)
    return RunTable(f"notes of run {store.resolve(args.run_id)[:12]}", ("time", "note"),
                    [[when(n["time"]), n["text"]] for n in notes], data=notes)


def _plot(store, args):
    import matplotlib

    matplotlib.use("Agg")
    ax = store.plot(args.metric, args.run_ids or None, name=args.name)
    ax.figure.savefig(args.out)
    return {"written": args.out} if args.json else f"wrote {args.out}"


_COMMANDS = {"list": _list, "show": _show, "compare": _compare, "history": _history,
             "anomalies": _anomalies, "report": _report, "leaderboard": _leaderboard,
             "active": _active, "archive": _archive, "note": _note, "plot": _plot}
