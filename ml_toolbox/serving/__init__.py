"""Serving: a router over a store alias with canary and shadow rollout, KPIs, a rollout policy, and an
HTTP server (Starlette + uvicorn, the ``serve`` extra).

Router
    Router, Answer, NotReadyError
KPIs and policy
    KPIBoard, RolloutPolicy, Rule, Verdict, evidence_of
HTTP
    create_app, serve, parse_payload
"""

import importlib

_EXPORTS = {
    "Router": "ml_toolbox.serving.router",
    "Answer": "ml_toolbox.serving.router",
    "NotReadyError": "ml_toolbox.serving.router",
    "KPIBoard": "ml_toolbox.serving.kpis",
    "RolloutPolicy": "ml_toolbox.serving.policy",
    "Rule": "ml_toolbox.serving.policy",
    "Verdict": "ml_toolbox.serving.policy",
    "evidence_of": "ml_toolbox.serving.policy",
    "create_app": "ml_toolbox.serving.http",
    "serve": "ml_toolbox.serving.http",
    "parse_payload": "ml_toolbox.serving.http",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ml_toolbox.serving' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
