"""A canary step as one line of text, for `rollouts get` and the other views (read from
the raw spec, valid or not)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollouts.models.step_kinds import STEP_KINDS


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def describe_step(step: Mapping[str, Any]) -> str:
    """One line for a step; a step of several fields shows each, in the order they run
    (e.g. "setCanaryScale: replicas=1 + setHeaderRoute: testers (x-tester=yes) + pause: 15")."""
    parts = [_describe_field(kind, step[kind]) for kind in STEP_KINDS if kind in step]
    return " + ".join(parts) or ", ".join(step) or "(empty step)"


def _describe_field(kind: str, value: Any) -> str:
    body = _dict(value)
    if kind == "setWeight":
        return f"setWeight: {value}"
    if kind == "pause":
        duration = body.get("duration")
        return f"pause: {duration}" if duration is not None else "pause (until promoted)"
    if kind == "analysis":
        names = [str(_dict(t).get("templateName")) for t in body.get("templates") or []]
        return f"analysis: {', '.join(names)}"
    if kind == "setCanaryScale":
        return "setCanaryScale: " + ", ".join(f"{k}={v}" for k, v in body.items())
    if kind in ("setHeaderRoute", "setMirrorRoute"):
        matches = body.get("match") or []
        if not matches:
            return f"{kind}: {body.get('name')} removed"
        shown = [_describe_match(_dict(m)) for m in matches]
        return f"{kind}: {body.get('name')} ({'; '.join(shown)})"
    if kind == "experiment":
        names = [str(_dict(t).get("name")) for t in body.get("templates") or []]
        duration = body.get("duration")
        return f"experiment: {', '.join(names)}" + (f" for {duration}" if duration else "")
    return f"{kind}: {body.get('name')}"  # plugin


def _describe_match(match: Mapping[str, Any]) -> str:
    """A route match in short: header=value, method, path (prefix* / ~regex)."""
    def value(raw: Any) -> str:
        given = _dict(raw)
        if "exact" in given:
            return str(given["exact"])
        if "prefix" in given:
            return f"{given['prefix']}*"
        return f"~{given.get('regex', '')}"

    parts = []
    if "headerName" in match:
        parts.append(f"{match['headerName']}={value(match.get('headerValue'))}")
    for name, given in _dict(match.get("headers")).items():
        parts.append(f"{name}={value(given)}")
    if "method" in match:
        parts.append(value(match["method"]))
    if "path" in match:
        parts.append(value(match["path"]))
    return " ".join(parts) or "all"
