"""``ml-toolbox serve`` and ``ml-toolbox rollout status``: the serving commands, registered in
:mod:`ml_toolbox.cli`.

Examples
--------
::

    ml-toolbox serve --store models --name churn                       # production, on 127.0.0.1:8000
    ml-toolbox serve --store models --name churn --canary challenger --percent 10 \\
        --promote-rule "agreement>=0.98" --promote-rule "p95_ms<=champion*1.2" \\
        --rollback-rule "error_rate<=0.01" --min-requests 500
    ml-toolbox --store models rollout status churn --url http://127.0.0.1:8000
"""

import json
import os
import urllib.error
import urllib.request

from rich.table import Table

from ml_toolbox import _argtypes as argtypes
from ml_toolbox._cliout import fit, print_json

from .policy import evidence_of

__all__ = ["add_commands"]


def add_commands(sub):
    """Add the ``serve`` and ``rollout`` sub-commands to the CLI's parser.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The sub-command parsers (``parser.add_subparsers()``).

    Returns
    -------
    dict
        Sub-command name -> handler ``f(args)``.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="ml-toolbox")
    >>> sorted(add_commands(parser.add_subparsers(dest="command")))
    ['rollout', 'serve']
    """
    p = sub.add_parser("serve", help="serve a store alias over HTTP (canary, shadow, rollout policy)")
    p.add_argument("--name", required=True, help="the model's name in the store")
    p.add_argument("--alias", default="production", help="the champion alias (default: production)")
    rollout = p.add_mutually_exclusive_group()
    rollout.add_argument("--canary", metavar="ALIAS", help="a challenger alias receiving --percent of traffic")
    rollout.add_argument("--shadow", metavar="ALIAS", help="a challenger alias shadowing --percent of traffic")
    p.add_argument("--percent", type=argtypes.percent, default=None,
                   help="traffic share of the challenger, 0-100 (default: 10 for a canary, 100 in shadow)")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1: this machine only")
    p.add_argument("--port", type=argtypes.port, default=8000)
    p.add_argument("--workers", type=argtypes.positive_int, default=1)
    p.add_argument("--token", default=None,
                   help="require 'Authorization: Bearer TOKEN' on every endpoint (default: $ML_TOOLBOX_SERVE_TOKEN)")
    p.add_argument("--max-body", type=argtypes.positive_int, default=None, help="largest request body in bytes (default 1 MiB)")
    p.add_argument("--metric", action="append", default=[], help="feedback metric by scikit-learn name (repeatable)")
    p.add_argument("--promote-rule", action="append", default=[], metavar="RULE", type=argtypes.rule,
                   help="e.g. 'agreement>=0.98', 'p95_ms<=champion*1.2' (all must hold; repeatable)")
    p.add_argument("--rollback-rule", action="append", default=[], metavar="RULE", type=argtypes.rule,
                   help="e.g. 'error_rate<=0.01' (the challenger is rolled back when one fails; repeatable)")
    p.add_argument("--min-requests", type=argtypes.non_negative_int, default=100)
    p.add_argument("--gate", action="append", default=[], metavar="EXPR", type=argtypes.gate, help="store gate checked at promotion")
    p.add_argument("--dry-run", action="store_true", help="the policy reports its verdict and never acts")
    p.add_argument("--poll-interval", type=argtypes.positive_float, default=0.25, help="seconds between two reads of the aliases")

    r = sub.add_parser("rollout", help="the rollout of a served model: KPIs side by side and the verdict")
    rs = r.add_subparsers(dest="rollout_command", metavar="ACTION", parser_class=type(r))
    rs.required = True
    s = rs.add_parser("status", help="KPIs of champion and challenger, the policy's verdict, past decisions")
    s.add_argument("name")
    s.add_argument("--url", default=os.environ.get("ML_TOOLBOX_SERVE_URL"),
                   help="the running server (default: $ML_TOOLBOX_SERVE_URL); without it, only the store's history")
    s.add_argument("--token", default=None, help="bearer token (default: $ML_TOOLBOX_SERVE_TOKEN)")
    return {"serve": _cmd_serve, "rollout": _cmd_rollout}


def spec_from_args(store, args):
    """The server spec (see :func:`ml_toolbox.serving.http.app_from_spec`) of ``ml-toolbox serve`` arguments."""
    challenger = args.canary or args.shadow
    if args.percent is not None and not 0 <= args.percent <= 100:
        raise ValueError(f"serve: --percent must be between 0 and 100; got {args.percent}.")
    rules = args.promote_rule or args.rollback_rule
    if rules and challenger is None:
        raise ValueError("serve: rollout rules judge a challenger; give --canary ALIAS or --shadow ALIAS.")
    if args.workers < 1:
        raise ValueError(f"serve: --workers must be at least 1; got {args.workers}.")
    if challenger is not None and challenger == args.alias:
        raise ValueError(f"serve: the challenger alias must differ from --alias {args.alias!r}.")
    policy = None
    if rules:
        policy = {"promote": args.promote_rule, "rollback": args.rollback_rule, "min_requests": args.min_requests,
                  "gates": args.gate or None, "dry_run": args.dry_run}
        from .policy import RolloutPolicy

        RolloutPolicy(**policy)  # refuse a bad rule now, not in the worker
        if args.workers > 1:  # before the "serving ..." line: nothing starts
            raise ValueError(f"serve: a rollout policy needs --workers 1 (each worker would judge its own share of "
                             f"the traffic); got --workers {args.workers}.")
    return {"store": str(store.path), "name": args.name, "alias": args.alias, "challenger": challenger,
            "mode": "shadow" if args.shadow else "canary",
            "share": None if args.percent is None else args.percent / 100.0, "policy": policy,
            "metrics": args.metric or None, "token": args.token or os.environ.get("ML_TOOLBOX_SERVE_TOKEN"),
            "max_body": args.max_body, "poll_interval": args.poll_interval,
            "signing_key": getattr(args, "signing_key", None)}


def _cmd_serve(store, args, out):
    from .http import serve

    if not store.list_versions(args.name):
        raise store._missing(args.name)
    spec = spec_from_args(store, args)
    where = f"http://{args.host}:{args.port}"
    route = f", {spec['mode']} {spec['challenger']!r}" if spec["challenger"] else ""
    out.print(f"serving {args.name!r} alias {args.alias!r}{route} on {where}"
              f"{' (bearer token required)' if spec['token'] else ''}")
    serve(spec, host=args.host, port=args.port, workers=args.workers)
    return 0


def _fetch(url, token):
    request = urllib.request.Request(url.rstrip("/") + "/rollout")
    token = token or os.environ.get("ML_TOOLBOX_SERVE_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a URL the user gave
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ValueError(f"Cannot read the rollout status from {url}: {exc}") from exc


_ROWS = ("version", "alias", "requests", "errors", "error_rate", "p50_ms", "p95_ms", "p99_ms", "agreement",
         "compared", "feedback")


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _cmd_rollout(store, args, out):
    if not store.list_versions(args.name):
        raise store._missing(args.name)
    status = _fetch(args.url, args.token) if args.url else None
    decisions = [dict(e, evidence=evidence_of(e)) for e in store.history(args.name) if evidence_of(e) is not None]
    if args.json:
        print_json(out, {"live": status, "aliases": store.aliases(args.name), "decisions": decisions})
        return 0
    out.print(f"{args.name}: aliases {store.aliases(args.name)}")
    if status is None:
        out.print("(no --url: live KPIs and the verdict come from a running server)")
    else:
        table = Table(title=f"{args.name}: {status['mode']} of {status['challenger_alias']!r} "
                            f"({status['share'] * 100:g}%) against {status['alias']!r}")
        table.add_column("KPI")
        table.add_column("champion")
        table.add_column("challenger")
        champion, challenger = status.get("champion") or {}, status.get("challenger") or {}
        names = list(_ROWS) + [k for k in champion if k not in _ROWS]
        for key in names:
            table.add_row(key, _fmt(champion.get(key)), _fmt(challenger.get(key)))
        out.print(fit(table, out.width))
        verdict = status.get("verdict")
        if verdict:
            dry = " (dry run)" if status.get("policy", {}).get("dry_run") else ""
            out.print(f"verdict{dry}: {verdict['action']}: " + "; ".join(verdict["reasons"]))
        for failure in status.get("failures") or []:
            out.print(f"not served: version {failure['version']} ({failure['alias']}): {failure['error']}")
    for event in decisions:
        out.print(f"{event['when']}  {event['alias']}: {event['from']} -> {event['to']}  "
                  f"{event['reason'].split(' evidence=')[0]}")
    return 0
