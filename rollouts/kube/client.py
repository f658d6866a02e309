"""A thin async Kubernetes API client.

Only what the controller and the CLI need: get, list, create, merge/JSON patch, replace,
delete and watch on any resource addressed by (group, version, plural). Error statuses
become `rollouts.errors` exceptions; nothing is retried here (a 409 is a signal to observe
again, decided by the caller). Requests are counted per verb for the benchmarks.

The bytes travel over aiohttp by default (the controller) or httpx (`http="httpx"`: the CLI,
and tests that pass an `httpx.MockTransport`); see `rollouts.kube.sessions` for why.
Transport failures raise httpx's exception types either way.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Literal

import httpx

from rollouts.errors import ConflictError, ForbiddenError, KubeError, NotFoundError
from rollouts.kube import config as kubeconfig
from rollouts.kube.config import Connection
from rollouts.kube.sessions import AiohttpSession, HttpSession, HttpxSession

Body = dict[str, Any]
Items = list[Body]  # (a name of its own: `list` in KubeClient's body is the verb)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def resource_path(
    group: str,
    version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The REST path of a collection or an object; group "" is the core API."""
    path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    if namespace:
        path += f"/namespaces/{namespace}"
    path += f"/{plural}"
    if name:
        path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
    return path


def kind_resource(api_version: str, kind: str) -> tuple[str, str, str]:
    """(group, version, plural) of a kind, plurals as Kubernetes makes them for custom
    resources: the kind lowercased, -es after an s (Ingress -> ingresses)."""
    group, _, version = api_version.rpartition("/")
    lower = kind.lower()
    return group, version, lower + ("es" if lower.endswith("s") else "s")


_ERRORS: dict[int, type[KubeError]] = {
    409: ConflictError,
    404: NotFoundError,
    403: ForbiddenError,
}


def raise_for_status(status: int, reason_phrase: str, raw: bytes, body: Any = None) -> None:
    """Map an error answer to ConflictError / NotFoundError / ForbiddenError / KubeError, with
    the Status object's reason and message when the body is one."""
    if status < 400:
        return
    if body is None and raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
    reason = ""
    message = reason_phrase
    if isinstance(body, dict):
        reason = str(body.get("reason") or "")
        message = str(body.get("message") or message)
    elif raw:
        message = raw[:500].decode(errors="replace")
    raise _ERRORS.get(status, KubeError)(status, reason or reason_phrase, message)


class KubeClient:
    """Async client for one API server; use as an async context manager or call `close()`."""

    def __init__(
        self,
        connection: Connection,
        *,
        http: Literal["aiohttp", "httpx"] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_in_flight: int = 4,
        on_response: Callable[[str, int | None], None] | None = None,
    ) -> None:
        """`http`: the library under the requests (default aiohttp; httpx when a
        `transport` is given). `max_in_flight`: requests sent at once, over as many
        keep-alive connections; 4 measured best (docs/benchmarks.md, "The API client")."""
        self.connection = connection
        # Told (verb, HTTP status or None when no response came) after each request: metrics.
        self._on_response = on_response
        # Requests wait here, in arrival order, rather than in the library's connection pool:
        # with a thousand Rollouts reconciling at once httpcore's own queue degraded badly
        # (its assignment pass is quadratic in the backlog), and a pool's wait counts against
        # the request timeout, so requests failed without ever being sent.
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._http: HttpSession
        if http == "httpx" or (http is None and transport is not None):
            self._http = HttpxSession(connection, timeout=timeout, connections=max_in_flight,
                                      transport=transport)
        elif transport is not None:
            raise ValueError("an httpx transport needs http='httpx'")
        else:
            self._http = AiohttpSession(connection, timeout=timeout, connections=max_in_flight)
        # Requests sent, per verb (get, list, create, patch, update, delete, watch).
        self.request_counts: Counter[str] = Counter()

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def load(cls, kubeconfig_path: str | None = None, context: str | None = None) -> KubeClient:
        return cls(kubeconfig.load(kubeconfig_path, context))

    @property
    def default_namespace(self) -> str:
        return self.connection.default_namespace or "default"

    async def close(self) -> None:
        await self._http.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- plumbing ----------------------------------------------------------------------------

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        token = self.connection.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def _request(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        self.request_counts[verb] += 1
        content = None if body is None else json.dumps(body).encode()
        if content is not None and content_type is None:
            content_type = "application/json"
        async with self._in_flight:
            try:
                reply = await self._http.send(method, path, params=params or {},
                                              content=content,
                                              headers=self._headers(content_type))
            except httpx.TransportError:
                self._observe(verb, None)
                raise
        self._observe(verb, reply.status)
        try:
            payload = json.loads(reply.body) if reply.body else None
        except ValueError:
            payload = None
        raise_for_status(reply.status, reply.reason, reply.body, payload)
        return payload

    def _observe(self, verb: str, code: int | None) -> None:
        if self._on_response is not None:
            self._on_response(verb, code)

    # --- verbs -------------------------------------------------------------------------------

    async def get(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        subresource: str | None = None,
    ) -> Body:
        path = resource_path(group, version, plural, namespace, name, subresource)
        result: Body = await self._request("get", "GET", path)
        return result

    async def list(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[Items, str]:
        """Items and the list's resourceVersion (to watch from), in one answer."""
        items, version_, _ = await self.list_page(
            group, version, plural, namespace, label_selector=label_selector,
            field_selector=field_selector)
        return items, version_

    async def list_page(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[Items, str, str | None]:
        """Items, the list's resourceVersion and, for a chunked list (`limit`), the token of
        the next page (None on the last). The server may send more or fewer than `limit`."""
        params: dict[str, str] = {}
        for name, value in (("labelSelector", label_selector), ("fieldSelector", field_selector),
                            ("limit", limit), ("continue", continue_token)):
            if value:
                params[name] = str(value)
        path = resource_path(group, version, plural, namespace)
        result = await self._request("list", "GET", path, params=params) or {}
        metadata = result.get("metadata") or {}
        return (list(result.get("items") or []), str(metadata.get("resourceVersion") or ""),
                str(metadata.get("continue") or "") or None)

    async def create(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        body: Mapping[str, Any],
        *,
        name: str | None = None,
        subresource: str | None = None,
    ) -> Body:
        """POST to a collection, or to an object's subresource (e.g. a pod's eviction)."""
        path = resource_path(group, version, plural, namespace, name, subresource)
        result: Body = await self._request("create", "POST", path, body=dict(body))
        return result

    async def patch_merge(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        body: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> Body:
        path = resource_path(group, version, plural, namespace, name, subresource)
        result: Body = await self._request(
            "patch", "PATCH", path, body=dict(body), content_type=MERGE_PATCH
        )
        return result

    async def apply(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        manifest: Mapping[str, Any],
        *,
        field_manager: str,
        force: bool = False,
    ) -> Body:
        """Server-side apply (PATCH application/apply-patch+yaml; JSON is YAML) as
        `field_manager`; `force` takes fields other managers own instead of a 409."""
        path = resource_path(group, version, plural, namespace, name)
        params = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        result: Body = await self._request(
            "patch", "PATCH", path, params=params, body=dict(manifest), content_type=APPLY_PATCH
        )
        return result

    async def patch_json(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        ops: Sequence[Mapping[str, Any]],
        *,
        subresource: str | None = None,
    ) -> Body:
        path = resource_path(group, version, plural, namespace, name, subresource)
        result: Body = await self._request(
            "patch", "PATCH", path, body=[dict(op) for op in ops], content_type=JSON_PATCH
        )
        return result

    async def replace(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        body: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> Body:
        path = resource_path(group, version, plural, namespace, name, subresource)
        result: Body = await self._request("update", "PUT", path, body=dict(body))
        return result

    async def delete(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str | None = "Background",
        resource_version: str | None = None,
    ) -> Body | None:
        """Delete; with `resource_version` the delete is a precondition-guarded write."""
        path = resource_path(group, version, plural, namespace, name)
        options: Body = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if resource_version:
            options["preconditions"] = {"resourceVersion": resource_version}
        result: Body | None = await self._request("delete", "DELETE", path, body=options)
        return result

    async def watch(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[tuple[str, Body]]:
        """Stream (type, object) events; ends when the server closes the stream.

        An ERROR event (e.g. 410 Gone: the resourceVersion is too old) raises KubeError with
        the Status code; the caller lists again and watches from the new version.
        """
        params: dict[str, str] = {"watch": "true", "allowWatchBookmarks": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if label_selector:
            params["labelSelector"] = label_selector
        if timeout is not None:
            params["timeoutSeconds"] = str(max(1, int(timeout)))
        path = resource_path(group, version, plural, namespace)
        self.request_counts["watch"] += 1
        async with self._http.stream(
            path, params=params, headers=self._headers(),
            read_timeout=None if timeout is None else timeout + 5.0,
        ) as response:
            self._observe("watch", response.status)
            if response.status >= 400:
                raise_for_status(response.status, response.reason, await response.read())
            async for line in response.lines:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = str(event.get("type", ""))
                obj = event.get("object") or {}
                if kind == "ERROR":
                    code = int(obj.get("code") or 500)
                    raise _ERRORS.get(code, KubeError)(
                        code, str(obj.get("reason") or ""), str(obj.get("message") or ""))
                yield kind, obj
