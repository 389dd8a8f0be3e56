"""``ml-toolbox``: inspect and manage a versioned model store from the shell.

Exit codes: 0 done, 1 refused or a failed check (gate, integrity, unknown version, aliased version),
2 bad usage (unknown command or option, a missing argument, a value that does not parse), with the
command's usage line. The global options (``--store``, ``--json``, ...) go before or after the command;
``ml-toolbox --version`` and ``python -m ml_toolbox`` work as usual (docs/cli.md).

Examples
--------
::

    ml-toolbox --store models list
    ml-toolbox list churn --store models --json
    ml-toolbox --store models show churn production
    ml-toolbox --store models diff churn 3 4
    ml-toolbox --store models promote churn 4 production --gate "accuracy>=0.85" --gate "accuracy>=current"
    ml-toolbox --store models rollback churn production --reason "latency regression"
    ml-toolbox --store models prune --keep-last 5 --older-than 30d
    ml-toolbox --store models verify
    ml-toolbox --store models serve --name churn --canary challenger --percent 10
    ml-toolbox --store models rollout status churn --url http://127.0.0.1:8000
"""

import argparse
import os
import sys
from collections.abc import Callable

from rich.console import Console

from ml_toolbox import __version__
from ml_toolbox.store import (
    AliasedVersionError,
    GateError,
    IntegrityError,
    PersistenceError,
    StoreError,
    VersionNotFoundError,
)
from ml_toolbox.store.commands import add_commands as add_store_commands
from ml_toolbox.store.commands import add_store_options, open_store

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` returns the code."""

    def error(self, message):
        raise _UsageError(f"{self.prog}: error: {message}", self.format_usage())


class _UsageError(Exception):
    def __init__(self, message, usage):
        super().__init__(message)
        self.usage = usage


def build_parser():
    """The argument parser of ``ml-toolbox`` (sub-commands list, show, diff, promote, rollback, ...).

    The global options (``--store``, ``--signing-key``, ``--no-pickle``, ``--formats``, ``--runs``,
    ``--json``) are accepted before the command and after it, at every level: the main parser holds
    their defaults, and each sub-parser holds a copy whose default is :data:`argparse.SUPPRESS`, so a
    value given after the command wins and an absent one leaves the main parser's value alone.

    Returns
    -------
    argparse.ArgumentParser
        The parser; its ``error`` raises instead of exiting (see :func:`main`).

    Examples
    --------
    >>> args = build_parser().parse_args(["list", "--store", "models", "--json"])
    >>> args.command, args.store, args.json
    ('list', 'models', True)
    """
    parser = _Parser(prog="ml-toolbox", description="Inspect and manage an ml_toolbox model store.")
    parser.add_argument("--version", action="version", version=f"ml-toolbox {__version__}",
                        help="print the package's version and exit")
    _add_global_options(parser, ("store", "runs"), top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _COMMANDS.update(add_store_commands(sub))  # list, show, ..., verify (ml_toolbox/store/commands.py)
    from ml_toolbox.runs.cli import add_parser as add_runs_parser  # the run store: its own module

    add_runs_parser(sub)
    from ml_toolbox.serving.cli import add_commands  # serve, rollout (ml_toolbox/serving)

    _COMMANDS.update(add_commands(sub))
    for name, command in sub.choices.items():
        _add_everywhere(command, ("runs",) if name == "runs" else ("store",))
    return parser


def _add_global_options(parser, groups, *, top):
    """Add the global options of ``groups`` ("store", "runs") and --json to ``parser``."""
    options = parser.add_argument_group("global options (before or after the command)")
    if "store" in groups:
        add_store_options(options, suppress=not top)
    if "runs" in groups:
        options.add_argument("--runs", dest="runs_dir", default=None if top else argparse.SUPPRESS,
                             help="the run store directory of 'ml-toolbox runs' (default: $ML_TOOLBOX_RUNS)")
    options.add_argument("--json", action="store_true", default=False if top else argparse.SUPPRESS,
                         help="print JSON instead of tables")


def _add_everywhere(parser, groups):
    """The global options on ``parser`` and on every sub-parser below it (``runs list``, ``rollout status``)."""
    _add_global_options(parser, groups, top=False)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_everywhere(child, groups)


def _open_store(args):
    return open_store(args, _UsageError)


_COMMANDS: dict[str, Callable] = {}  # command name -> function (the store's, the runs', serving's)


def main(argv=None, *, console=None, error_console=None):
    """Run ``ml-toolbox`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Parameters
    ----------
    argv : list of str, optional
        The command line without the program's name (default ``sys.argv[1:]``).
    console, error_console : rich.console.Console, optional
        Where results and errors go (default: stdout and stderr).

    Returns
    -------
    int
        The exit code: 0 done, 1 refused or failed check, 2 bad usage.

    Examples
    --------
    >>> import io, tempfile
    >>> from rich.console import Console
    >>> from ml_toolbox import PipelinePersistence
    >>> where = PipelinePersistence(tempfile.mkdtemp()).storage_dir
    >>> out = Console(file=io.StringIO())
    >>> main(["--store", str(where), "list", "--json"], console=out)
    0
    >>> out.file.getvalue()
    '[]\\n'
    >>> main(["list", "--store", str(where), "--older-than", "3x"], console=out,
    ...      error_console=Console(file=io.StringIO()))  # a usage error
    2
    """
    out = console or Console(file=sys.stdout, soft_wrap=False)
    err = error_console or Console(file=sys.stderr, soft_wrap=True)
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
        if args.command == "runs":
            from ml_toolbox.runs.cli import run as run_runs_command

            if not (args.runs_dir or os.environ.get("ML_TOOLBOX_RUNS")):
                raise _UsageError("ml-toolbox runs: error: no run store given (use --runs DIR or set "
                                  "ML_TOOLBOX_RUNS)", parser.format_usage())

            return run_runs_command(args, out, err)
        store = _open_store(args)
        return _COMMANDS[args.command](store, args, out)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except _UsageError as exc:
        err.print((exc.usage or parser.format_usage()).rstrip(), markup=False, highlight=False)
        err.print(str(exc), markup=False, highlight=False)
        return EXIT_USAGE
    except (GateError, IntegrityError, VersionNotFoundError, AliasedVersionError, StoreError,
            PersistenceError, ValueError, TypeError) as exc:
        err.print(f"ml-toolbox: refused: {exc}", markup=False, highlight=False)
        return EXIT_REFUSED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
