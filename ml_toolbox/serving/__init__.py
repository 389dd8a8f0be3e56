"""Serving: a router over a store alias with canary and shadow rollout, KPIs, a rollout policy, and an
HTTP server (Starlette + uvicorn, the ``serve`` extra, imported only when an app is built).

Router
    Router, Answer, NotReadyError
KPIs and policy
    KPIBoard, RolloutPolicy, Rule, Verdict, evidence_of
HTTP
    create_app, serve, parse_payload
"""

from .http import create_app, parse_payload, serve
from .kpis import KPIBoard
from .policy import RolloutPolicy, Rule, Verdict, evidence_of
from .router import Answer, NotReadyError, Router

__all__ = ["Answer", "KPIBoard", "NotReadyError", "RolloutPolicy", "Router", "Rule", "Verdict", "create_app",
           "evidence_of", "parse_payload", "serve"]
