"""An in-process Kubernetes API emulator served over real HTTP on 127.0.0.1.

Written directly on ``aiohttp.web`` rather than on kmock: kmock 0.8 stores objects as sent
(no uid / resourceVersion / generation), has no resourceVersion conflicts, no separate status
subresource, no PUT, no watch from a resourceVersion, no bookmarks, no selectors and a broken
``GET /api/v1/namespaces``; patching all of that in a subclass came out larger and less faithful
than owning the few hundred lines of semantics a controller relies on.

What the real kopf operator, the kubernetes Python client, kubectl-ish clients and httpx see:

* discovery (``/api``, ``/api/v1``, ``/apis``, ``/apis/G``, ``/apis/G/V``, ``/version``) with
  subresources listed as ``plural/status`` and ``plural/scale``;
* built-in kinds (namespaces, pods, services, events, secrets, configmaps, serviceaccounts,
  replicasets, deployments, jobs, leases, customresourcedefinitions) and every custom resource
  whose CustomResourceDefinition is created;
* server-filled metadata (namespace, uid, creationTimestamp, generateName, resourceVersion from
  one global counter, generation bumped by spec changes only), 201 on create, 409 AlreadyExists,
  409 Conflict on a stale resourceVersion (PUT, merge patch, JSON patch), 422 on a failed
  JSON-patch ``test``, the status subresource kept separate, ``/scale``, finalizers and
  ``deletionTimestamp``, background garbage collection by ``ownerReferences``;
* ``metadata.managedFields`` on every write and server-side apply (``apply-patch+yaml`` with
  ``fieldManager`` and ``force``: field ownership, the 409 apply conflict, atomic
  ``Service.spec.selector``; the default manager from the User-Agent), see
  ``rollouts.sandbox.managedfields``;
* error answers with kube-apiserver's code, reason, message and details
  (``rollouts.sandbox.apierrors``);
* custom resources pruned and validated against their CRD's structural schema and CEL rules,
  400 on unknown fields with ``?fieldValidation=Strict`` (``rollouts.sandbox.schema``);
* ``/openapi/v3`` (and a JSON ``/openapi/v2``) built from the CRDs and the built-in kinds, so
  ``kubectl apply`` validates on the server (``rollouts.sandbox.openapi``); Table answers with
  the built-in kinds' usual columns and the CRDs' printer columns (``rollouts.sandbox.tables``);
* list with label/field selectors and ``limit``/``continue``; watch with replay from a
  resourceVersion inside a bounded history window (410 Expired beyond it), ``timeoutSeconds``,
  ``allowWatchBookmarks``; every watch event carries the resourceVersion of the write's reply.

The store and its write semantics live in ``rollouts.sandbox.store`` (storage and history in
``storage``, deletion in ``deletion``, patches in ``patches``, selectors in ``selectors``,
watch plumbing in ``watch``, the served kinds in ``resources``); the in-process API in
``inprocess_api``, watch over HTTP in ``watch_http``, discovery and OpenAPI documents in
``discovery``, the thread runner in ``emulator_thread``. This module is the HTTP front.

Not emulated: admission webhooks, validation of built-in kinds, CRD defaulting (see
``rollouts.sandbox.schema`` for what schema checks are done), conversion between CRD versions
(objects are stored once and served with the requested apiVersion), the full strategic-merge
rules (only the common list merge keys -- containers, env, volumes, ports, conditions... --
and ``$patch`` directives; refused with 415 on custom resources like a real server), the
OpenAPI merge keys of every built-in field (see ``rollouts.sandbox.managedfields`` for the
server-side apply and ``managedFields`` that are emulated),
authentication (any bearer token, or none, is accepted; tokens registered with ``add_token``
are authorised by the RBAC objects in the store, see ``rollouts.sandbox.rbac``), graceful pod
termination, Foreground deletion (treated as Background), Table output on watch streams
(``get -w`` gets plain JSON events), OpenAPI v2 in protobuf (kubectl's client-side validation
fallback: it is answered 406), aggregated discovery (clients fall back to the legacy documents),
per-resource history windows (one global window of ``history_size`` events).

``ApiEmulator.requests`` counts HTTP requests by ``(verb, resource)`` -- verbs get, list, watch,
create, update, patch, delete, deletecollection; resource ``plural`` or ``plural/subresource``;
discovery as ``("get", "discovery")``. In-process calls are not counted.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import copy
import datetime as dt
import json
import pathlib
import threading
from collections.abc import Callable, Iterable
from typing import Any

import yaml
from aiohttp import web

from rollouts.sandbox import apierrors, eviction, managedfields, rbac, tables
from rollouts.sandbox.apierrors import ApiError
from rollouts.sandbox.certs import ServingCertificate, serving_certificate
from rollouts.sandbox.discovery import (
    SERVER_VERSION,
    api_group,
    api_group_list,
    api_resource_list,
    openapi_document,
)
from rollouts.sandbox.inprocess_api import InProcessApi
from rollouts.sandbox.resources import ResourceInfo
from rollouts.sandbox.selectors import (
    LabelSelector,
)
from rollouts.sandbox.store import IN_PROCESS_WRITER
from rollouts.sandbox.watch import Subscription, WatchEvent
from rollouts.sandbox.watch_http import TRUE_VALUES, WatchStreams, int_param

__all__ = [
    "ApiEmulator",
    "ApiError",
    "LabelSelector",
    "ResourceInfo",
    "Subscription",
    "WatchEvent",
]

Obj = dict[str, Any]


class ApiEmulator(InProcessApi, WatchStreams):
    """A Kubernetes API server in miniature: one global store, real HTTP, real watch streams.

    The in-process methods (``get_object``, ``create_object``, ``patch_object``...) share the
    HTTP path's semantics and emit the same watch events. They may be called from any thread:
    when the emulator runs on another thread's loop, the call is run on that loop.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        history_size: int = 10_000,
        bookmark_interval: float = 5.0,
        clock: Callable[[], dt.datetime] | None = None,
        namespaces: Iterable[str] = ("default", "kube-system", "kube-public"),
        tls: bool = False,
    ) -> None:
        super().__init__(history_size=history_size, clock=clock, namespaces=namespaces)
        self.host = host
        self.port = port
        # HTTPS with a CA made at start and written into the kubeconfig (as a cluster's).
        self.tls = tls
        self.certificate: ServingCertificate | None = None
        self.bookmark_interval = bookmark_interval
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._stopping: asyncio.Event | None = None
        self.requests_total = 0
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        # RBAC: users of the registered tokens, and what each was allowed to do, by
        # (user, verb, group, resource[/subresource], namespace or "" for cluster scope).
        self.tokens: dict[str, rbac.User] = {}
        self.allowed: collections.Counter[tuple[str, str, str, str, str]] = (
            collections.Counter())
        self._policy = rbac.Policy(
            lambda plural, ns, name: self._store(self._info(rbac.GROUP, "v1", plural)).get(
                (ns or "", name)),
            lambda plural, ns: [
                obj for (obj_ns, _), obj in
                self._store(self._info(rbac.GROUP, "v1", plural)).items()
                if ns is None or obj_ns == ns])

    # ---------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        if self.tls and self.certificate is None:
            self.certificate = serving_certificate(self.host)
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=(
            self.certificate.server_context if self.certificate is not None else None))
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        for watchers in self._watchers.values():
            for watcher in list(watchers):
                watcher.deliver(None)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._loop = None
        self._loop_thread = None

    async def __aenter__(self) -> ApiEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def reset_counters(self) -> None:
        self.requests_total = 0
        self.requests.clear()

    def add_token(self, token: str, user: rbac.User) -> None:
        """Requests with this bearer token are `user`'s, authorised by the stored RBAC."""
        self.tokens[token] = user

    def write_kubeconfig(self, path: pathlib.Path, namespace: str = "default",
                         token: str = "sandbox-token") -> pathlib.Path:
        """A kubeconfig with context ``sandbox``: the server (with its CA when it speaks
        HTTPS), a bearer token (by default a dummy one that acts as the cluster's
        administrator)."""
        cluster: Obj = {"server": self.url}
        if self.certificate is not None:
            cluster["certificate-authority-data"] = self.certificate.ca_data
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sandbox", "cluster": cluster}],
            "users": [{"name": "sandbox", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "sandbox",
                    "context": {"cluster": "sandbox", "user": "sandbox", "namespace": namespace},
                }
            ],
            "current-context": "sandbox",
            "preferences": {},
        }
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # ----------------------------------------------------------------- HTTP

    def _count(self, verb: str, resource: str) -> None:
        self.requests_total += 1
        self.requests[(verb, resource)] += 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except ApiError as e:
            return web.json_response(e.status(), status=e.code)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:  # a bug here must look like a server error, not a hang
            err = ApiError(500, "InternalError", f"{type(e).__name__}: {e}")
            return web.json_response(err.status(), status=500)

    def _authorize(self, request: web.Request, **attributes: Any) -> None:
        """403 unless the request's token is unrestricted or its RBAC allows the request."""
        auth = request.headers.get("Authorization", "")
        user = self.tokens.get(auth.removeprefix("Bearer ").strip()) if auth else None
        if user is None:
            return
        if "verb" not in attributes:  # a non-resource path (discovery, health)
            attributes = {"verb": request.method.lower(), "resource_request": False}
        asked = rbac.Request(user=user, path=request.path, **attributes)
        allowed, reason = self._policy.decide(asked)
        if not allowed:
            message, details = rbac.forbidden_message(asked, reason)
            raise apierrors.forbidden(message, details)
        if asked.resource_request:
            self.allowed[(user.name, asked.verb, asked.group, asked.combined_resource,
                          asked.namespace)] += 1

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        q = request.query
        if not parts or parts[0] not in ("api", "apis") or len(parts) <= 2 + (
                parts[0] == "apis"):
            self._authorize(request)  # discovery and health paths
        if not parts:
            self._count("get", "discovery")
            return web.json_response({"paths": ["/api", "/api/v1", "/apis", "/version"]})
        if parts == ["version"]:
            self._count("get", "discovery")
            return web.json_response(dict(SERVER_VERSION))
        if parts[0] == "openapi":
            self._count("get", "openapi")
            accept = request.headers.get("Accept", "")
            if accept and "json" not in accept and "*/*" not in accept:
                raise apierrors.generic(406)  # kubectl asks v2 in protobuf: not served
            crds = self._objects.get(("apiextensions.k8s.io", "customresourcedefinitions"), {})
            return web.json_response(openapi_document(self._resources, crds.values(), parts[1:]))
        if parts[0] == "healthz" or parts[0] == "readyz" or parts[0] == "livez":
            return web.Response(text="ok")
        if parts[0] == "api":
            if len(parts) == 1:
                self._count("get", "discovery")
                return web.json_response(
                    {
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [
                            {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}
                        ],
                    }
                )
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis":
            if len(parts) == 1:
                self._count("get", "discovery")
                return web.json_response(api_group_list(self._resources))
            if len(parts) == 2:
                self._count("get", "discovery")
                return web.json_response(api_group(self._resources, parts[1]))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise apierrors.generic(404)
        if not rest:
            self._count("get", "discovery")
            return web.json_response(api_resource_list(self._resources, group, version))
        watch = q.get("watch") in TRUE_VALUES
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        namespace: str | None = None
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and not (group == "" and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise apierrors.generic(404)
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        info = self._info(group, version, plural)
        if info.namespaced is False and namespace is not None:
            raise apierrors.generic(404)
        if sub is not None and not (
            (sub == "status" and info.status) or (sub == "scale" and info.scale)
            or (sub == "eviction" and (group, plural) == ("", "pods"))
        ):
            raise apierrors.generic(404)
        if info.namespaced and name is not None and namespace is None:
            raise apierrors.generic(404)
        resource = plural if sub is None else f"{plural}/{sub}"
        method = request.method
        self._authorize(
            request, verb=rbac.request_verb(method, watch=watch, named=name is not None),
            group=group, resource=plural, subresource=sub or "", namespace=namespace or "",
            name=name or "")
        dry_run = "dryRun" in q
        strict = q.get("fieldValidation") == "Strict"
        ctype = request.headers.get("Content-Type", "application/merge-patch+json")
        writer = managedfields.request_writer(
            q.get("fieldManager"), q.get("force"), request.headers.get("User-Agent", ""),
            applying=method == "PATCH" and "apply-patch+yaml" in ctype,
            options_kind={"POST": "CreateOptions", "PUT": "UpdateOptions"}.get(
                method, "PatchOptions")) if method in ("POST", "PUT", "PATCH") else (
                    IN_PROCESS_WRITER)
        if sub == "eviction" and method != "POST":
            raise apierrors.generic(405)

        if method == "GET":
            if watch:
                self._count("watch", resource)
                fields = q.get("fieldSelector")
                if name is not None:
                    fields = ",".join(filter(None, [fields, f"metadata.name={name}"]))
                return await self._watch(request, info, namespace, q.get("labelSelector"), fields)
            if name is None:
                self._count("list", resource)
                return self._respond(request, info, self._list(info, namespace, q), list_=True)
            self._count("get", resource)
            obj = self._current(info, namespace, name)
            if sub == "scale":
                return web.json_response(self._scale_object(info, obj))
            return self._respond(request, info, self._wire(info, obj))
        if method == "POST":
            self._count("create", resource)
            if sub == "eviction" and namespace is not None and name is not None:
                return web.json_response(
                    eviction.evict(self, namespace, name, await self._body(request)), status=201)
            if name is not None:
                raise apierrors.generic(405)
            body = await self._body(request)
            if dry_run:
                return web.json_response(
                    self._dry(lambda: self._create(info, namespace, body, strict=strict,
                                                   writer=writer), info),
                    status=201
                )
            return web.json_response(
                self._wire(info, self._create(info, namespace, body, strict=strict,
                                              writer=writer)), status=201
            )
        if method in ("PUT", "PATCH", "DELETE") and name is None:
            if method == "DELETE":
                self._count("deletecollection", resource)
                return web.json_response(self._delete_collection(info, namespace, q))
            raise apierrors.generic(405)
        assert name is not None
        if method == "PUT":
            self._count("update", resource)
            body = await self._body(request)
            if dry_run:
                result = self._dry(lambda: self._replace(
                    info, namespace, name, body, sub, strict=strict, writer=writer), info)
            else:
                result = self._replace(info, namespace, name, body, sub, strict=strict,
                                       writer=writer)
            if sub == "scale":
                return web.json_response(result)
            return web.json_response(self._wire(info, result))
        if method == "PATCH":
            self._count("patch", resource)
            patch = await self._body(request, yaml_ok="apply-patch+yaml" in ctype)
            existed = (namespace or "", name) in self._store(info)
            if dry_run:
                result = self._dry(lambda: self._patch(
                    info, namespace, name, ctype, patch, sub, strict=strict, writer=writer), info)
            else:
                result = self._patch(info, namespace, name, ctype, patch, sub, strict=strict,
                                     writer=writer)
            if sub == "scale":
                return web.json_response(result)
            # An apply that creates answers 201, as a create does.
            return web.json_response(self._wire(info, result), status=200 if existed else 201)
        if method == "DELETE":
            self._count("delete", resource)
            options = await self._body(request, optional=True) or {}
            for key in ("propagationPolicy", "gracePeriodSeconds"):
                if key in q:
                    options[key] = q[key]
            if dry_run:
                return web.json_response(
                    self._dry(lambda: self._delete(info, namespace, name, options), info)
                )
            return web.json_response(self._wire(info, self._delete(info, namespace, name, options)))
        raise apierrors.generic(405)

    def _dry(self, fn: Callable[[], Obj], info: ResourceInfo) -> Obj:
        """Run a write against a snapshot, answer its result, and restore everything."""
        saved = (
            copy.deepcopy(self._objects),
            self._rv,
            copy.copy(self._history),
            self._history_floor,
            dict(self._resources),
        )
        indexes = copy.deepcopy(self._indexes)
        watchers = self._watchers
        self._watchers = collections.defaultdict(set)
        try:
            result = self._out(info, fn()) if fn is not None else {}
        finally:
            (self._objects, self._rv, self._history, self._history_floor, self._resources) = saved
            self._indexes = indexes
            self._watchers = watchers
        return result

    async def _body(
        self, request: web.Request, *, yaml_ok: bool = False, optional: bool = False
    ) -> Any:
        raw = await request.read()
        if not raw.strip():
            if optional:
                return None
            raise apierrors.bad_request("the request body is empty")
        try:
            return yaml.safe_load(raw) if yaml_ok else json.loads(raw)
        except (ValueError, yaml.YAMLError) as e:
            raise apierrors.bad_request(f"the request body is not valid: {e}") from e

    def _list(self, info: ResourceInfo, namespace: str | None, q: Any) -> Obj:
        items = self._select(info, namespace, q.get("labelSelector"), q.get("fieldSelector"))
        limit = int_param(q.get("limit"), "limit")
        cont = q.get("continue")
        meta: Obj = {"resourceVersion": str(self._rv)}
        if cont:
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(cont.encode())))
            except ValueError:
                raise apierrors.bad_request("invalid continue token") from None
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace") or "", o["metadata"]["name"]) > after
            ]
        if limit and limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            token = json.dumps([last.get("namespace") or "", last["name"]])
            meta["continue"] = base64.urlsafe_b64encode(token.encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {
            "kind": f"{info.kind}List",
            "apiVersion": info.api_version,
            "metadata": meta,
            "items": [self._wire(info, o) for o in items],
        }

    def _delete_collection(self, info: ResourceInfo, namespace: str | None, q: Any) -> Obj:
        if info.namespaced and namespace is None:
            raise apierrors.generic(404)
        items = self._select(info, namespace, q.get("labelSelector"), q.get("fieldSelector"))
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            if (meta.get("namespace") or "", meta["name"]) in self._store(info):
                deleted.append(
                    self._wire(info, self._delete(info, meta.get("namespace"), meta["name"], None))
                )
        return {
            "kind": f"{info.kind}List",
            "apiVersion": info.api_version,
            "metadata": {"resourceVersion": str(self._rv)},
            "items": deleted,
        }

    def _respond(
        self, request: web.Request, info: ResourceInfo, body: Obj, *, list_: bool = False
    ) -> web.Response:
        accept = request.headers.get("Accept", "")
        if "as=Table" in accept:
            return web.json_response(self._table(info, body["items"] if list_ else [body], body))
        return web.json_response(body)

    def _table(self, info: ResourceInfo, items: list[Obj], body: Obj) -> Obj:
        version = body.get("metadata", {}).get("resourceVersion", str(self._rv))
        return tables.table(info.group, info.plural, info.printer_columns, items, version,
                            self._clock())
