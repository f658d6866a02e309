"""The web metric provider (`provider.web`): call an HTTP endpoint, pick a JSON value.

As in Argo Rollouts: `method` defaults to GET, `timeoutSeconds` to 10, `jsonPath` to
`{$}` (the whole document); `body` is sent as is, `jsonBody` as JSON with
`Content-Type: application/json`; any non-2xx status is an error, and so is a body that
is not JSON.

`jsonPath` supports the subset of Kubernetes JSONPath that analysis templates use, with
or without the surrounding braces and the leading `$`:

    {$}   {$.data.ok}   $.a.b[0]   {.status}   $.items[-1].value   $['key-with-dash']
    $.items[*].value   $.data.*

A path with a wildcard returns the list of everything it matched; a path without one
returns the single value it names, and fails with `JSONPathNotFound` if there is none.
Filters (`[?()]`), slices and recursive descent (`..`) are rejected as unsupported. The
evaluator is a small parser over the decoded JSON: no eval, no regular-expression tricks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from rollouts.analysis.providers.auth import spec_auth
from rollouts.analysis.providers.base import (
    ErrorReason,
    HttpClients,
    HttpProvider,
    Measurement,
    MeasurementResult,
    ProviderContext,
    ProviderError,
    http_status_error,
    json_text,
    shorten,
)
from rollouts.analysis.providers.egress import EgressPolicy
from rollouts.analysis.providers.job import MeasurementContext
from rollouts.models.analysis import Metric

__all__ = [
    "DEFAULT_JSON_PATH",
    "DEFAULT_TIMEOUT_SECONDS",
    "JsonPath",
    "JsonPathError",
    "JsonPathNotFoundError",
    "WebProvider",
]

DEFAULT_TIMEOUT_SECONDS = 10
DEFAULT_JSON_PATH = "{$}"
# Sent with every web measurement (unless the metric sets it): the IETF draft
# "The Idempotency-Key HTTP Header Field"; the value is MeasurementContext.measurement_key.
IDEMPOTENCY_HEADER = "Idempotency-Key"


class JsonPathError(ValueError):
    """The jsonPath text is not in the supported subset."""


class JsonPathNotFoundError(LookupError):
    """The document has nothing at the path."""


@dataclass(frozen=True)
class _Key:
    name: str


@dataclass(frozen=True)
class _Index:
    index: int


@dataclass(frozen=True)
class _Wildcard:
    pass


_Step = _Key | _Index | _Wildcard

# Characters that end a bare `.name` segment, and what a bare name may contain.
_NAME_STOP = frozenset(".[")
_BARE_NAME = re.compile(r"[A-Za-z0-9_\-/:@]+")


def _parse_path(text: str) -> tuple[_Step, ...]:
    path = text.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1].strip()
    if path.startswith("$"):
        path = path[1:]
    elif path and not path.startswith((".", "[")):
        # Kubernetes JSONPath also accepts `a.b` relative to the root.
        path = "." + path
    steps: list[_Step] = []
    i = 0
    while i < len(path):
        char = path[i]
        if char == ".":
            if path.startswith("..", i):
                raise JsonPathError(f"recursive descent '..' is not supported in {text!r}")
            i += 1
            if i < len(path) and path[i] == "*":
                steps.append(_Wildcard())
                i += 1
                continue
            start = i
            while i < len(path) and path[i] not in _NAME_STOP:
                i += 1
            name = path[start:i].strip()
            if not name:
                raise JsonPathError(f"empty name at position {start} in {text!r}")
            if not _BARE_NAME.fullmatch(name):
                raise JsonPathError(f"name {name!r} needs brackets, like ['{name}'], in {text!r}")
            steps.append(_Key(name))
        elif char == "[":
            end = _closing_bracket(path, i, text)
            inner = path[i + 1 : end].strip()
            steps.append(_bracket_step(inner, text))
            i = end + 1
        else:
            raise JsonPathError(f"unexpected {char!r} at position {i} in {text!r}")
    return tuple(steps)


def _closing_bracket(path: str, start: int, text: str) -> int:
    quote: str | None = None
    for j in range(start + 1, len(path)):
        char = path[j]
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "]":
            return j
    raise JsonPathError(f"unclosed '[' in {text!r}")


def _bracket_step(inner: str, text: str) -> _Step:
    if inner == "*":
        return _Wildcard()
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return _Key(inner[1:-1])
    if inner.startswith("?") or ":" in inner or "," in inner:
        raise JsonPathError(f"filters, slices and unions are not supported: [{inner}] in {text!r}")
    try:
        return _Index(int(inner))
    except ValueError:
        raise JsonPathError(f"bad subscript [{inner}] in {text!r}") from None


class JsonPath:
    """A compiled jsonPath of the supported subset."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.steps = _parse_path(text)
        self.has_wildcard = any(isinstance(step, _Wildcard) for step in self.steps)

    def find(self, document: object) -> object:
        """The value at the path (a list of matches when the path has a wildcard).

        Raises JsonPathNotFoundError when nothing is there.
        """
        matches = [document]
        for position, step in enumerate(self.steps):
            found: list[object] = []
            for node in matches:
                found.extend(_apply(step, node))
            if not found and not self.has_wildcard:
                shown = _render(self.steps[: position + 1])
                raise JsonPathNotFoundError(f"{shown} not found")
            matches = found
        if self.has_wildcard:
            if not matches:
                raise JsonPathNotFoundError(f"{self.text} matched nothing")
            return matches
        return matches[0]


def _apply(step: _Step, node: object) -> list[object]:
    if isinstance(step, _Key):
        if isinstance(node, Mapping) and step.name in node:
            return [node[step.name]]
        return []
    if isinstance(step, _Index):
        if isinstance(node, list) and -len(node) <= step.index < len(node):
            return [node[step.index]]
        return []
    if isinstance(node, Mapping):
        return list(node.values())
    if isinstance(node, list):
        return list(node)
    return []


def _render(steps: tuple[_Step, ...]) -> str:
    out = "$"
    for step in steps:
        if isinstance(step, _Key):
            out += f".{step.name}" if step.name.replace("_", "a").isalnum() else f"[{step.name!r}]"
        elif isinstance(step, _Index):
            out += f"[{step.index}]"
        else:
            out += "[*]"
    return out


class WebProvider(HttpProvider):
    """Measures `provider.web` metrics. `transport` is for tests."""

    kind = "web"

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clients: HttpClients | None = None,
        default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        policy: EgressPolicy | None = None,
    ) -> None:
        self.default_timeout = default_timeout
        self._clients = clients or HttpClients(transport=transport, policy=policy)

    async def measure(
        self, metric: Metric, context: ProviderContext, now: datetime
    ) -> MeasurementResult:
        spec = metric.provider.web
        if spec is None:
            return ProviderError(
                ErrorReason.INVALID_SPEC, f"metric {metric.name!r} has no web provider"
            )
        try:
            path = JsonPath(spec.json_path or DEFAULT_JSON_PATH)
        except JsonPathError as exc:
            return ProviderError(ErrorReason.INVALID_SPEC, f"jsonPath: {exc}")
        if not spec.url.startswith(("http://", "https://")):
            return ProviderError(
                ErrorReason.INVALID_SPEC, f"url {spec.url!r} is not an http(s) URL"
            )
        timeout = (
            float(spec.timeout_seconds)
            if spec.timeout_seconds is not None
            else self.default_timeout
        )
        headers = {h.key: h.value for h in spec.headers or ()}
        headers.update(context.headers)
        key = context.measurement_key(metric.name) if isinstance(
            context, MeasurementContext) else None
        if key is not None and not any(k.lower() == IDEMPOTENCY_HEADER.lower() for k in headers):
            # A measurement whose status write was lost (a kill, a conflict) is taken again
            # with the same key: an endpoint with side effects can tell it is a repeat.
            headers[IDEMPOTENCY_HEADER] = key
        auth = context.apply_auth(headers)
        if spec.authentication is not None:
            token = await spec_auth(
                self._clients, spec.authentication, headers,
                insecure=bool(spec.insecure), timeout=timeout,
            )
            if isinstance(token, ProviderError):
                return token
        content: bytes | None = None
        if spec.json_body is not None:
            content = json.dumps(spec.json_body).encode()
            if not any(key.lower() == "content-type" for key in headers):
                headers["Content-Type"] = "application/json"
        elif spec.body is not None:
            content = spec.body.encode()
        response = await self._clients.fetch(
            spec.method or "GET",
            spec.url,
            insecure=bool(spec.insecure),
            content=content,
            headers=headers,
            auth=auth,
            timeout=timeout,
        )
        if isinstance(response, ProviderError):
            return response
        return _parse(response, spec.url, path)


def _parse(response: httpx.Response, url: str, path: JsonPath) -> MeasurementResult:
    status = response.status_code
    if not 200 <= status < 300:
        return http_status_error(response, url)
    try:
        document: Any = json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ProviderError(
            ErrorReason.BAD_RESPONSE,
            f"{url} did not answer with JSON: {shorten(response.text, 200)!r}",
            status_code=status,
        )
    try:
        value = path.find(document)
    except JsonPathNotFoundError as exc:
        return ProviderError(
            ErrorReason.JSON_PATH, f"jsonPath {path.text}: {exc}", status_code=status
        )
    raw = value if isinstance(value, str) else json_text(value)
    return Measurement(value, shorten(raw), "json")
