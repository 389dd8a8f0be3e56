"""``ml-toolbox``: inspect and manage a versioned model store from the shell.

Exit codes: 0 done, 1 refused or a failed check (gate, integrity, unknown version, aliased version),
2 bad usage (unknown command or option).

Examples
--------
::

    ml-toolbox --store models list
    ml-toolbox --store models list churn
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
import sys
from collections.abc import Callable

from rich.console import Console

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
    """Build the argument parser of ``ml-toolbox`` (sub-commands list, show, diff, promote, rollback...).

    Returns
    -------
    argparse.ArgumentParser
        The parser, with every sub-command (the store's, ``runs``, ``serve``, ``rollout``...).

    Examples
    --------
    >>> build_parser().parse_args(["--store", "models/", "list"]).command
    'list'
    """
    parser = _Parser(prog="ml-toolbox", description="Inspect and manage an ml_toolbox model store.")
    add_store_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _COMMANDS.update(add_store_commands(sub))  # list, show, ..., verify (ml_toolbox/store/commands.py)
    from ml_toolbox.runs.cli import add_parser as add_runs_parser  # the run store: its own module

    add_runs_parser(sub)
    from ml_toolbox.serving.cli import add_commands  # serve, rollout (ml_toolbox/serving)

    _COMMANDS.update(add_commands(sub))
    return parser


def _open_store(args):
    return open_store(args, _UsageError)


_COMMANDS: dict[str, Callable] = {}  # command name -> function (the store's, the runs', serving's)


def main(argv=None, *, console=None, error_console=None):
    """Run ``ml-toolbox`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Parameters
    ----------
    argv : list of str, optional
        The arguments, without the program name.
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
    >>> where = tempfile.mkdtemp()
    >>> _ = PipelinePersistence(where)
    >>> out = io.StringIO()
    >>> main(["--store", where, "list"], console=Console(file=out))
    0
    """
    out = console or Console(file=sys.stdout, soft_wrap=False)
    err = error_console or Console(file=sys.stderr, soft_wrap=True)
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
        if args.command == "runs":
            from ml_toolbox.runs.cli import run as run_runs_command

            return run_runs_command(args, out, err)
        store = _open_store(args)
        return _COMMANDS[args.command](store, args, out)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except _UsageError as exc:
        if exc.usage:
            err.print(exc.usage.rstrip(), markup=False, highlight=False)
        err.print(str(exc), markup=False, highlight=False)
        return EXIT_USAGE
    except (GateError, IntegrityError, VersionNotFoundError, AliasedVersionError, StoreError,
            PersistenceError, ValueError, TypeError) as exc:
        err.print(f"ml-toolbox: refused: {exc}", markup=False, highlight=False)
        return EXIT_REFUSED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
