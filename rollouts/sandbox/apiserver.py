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

The store and its write semantics live in ``rollouts.sandbox.store`` (patches in
``patches``, selectors in ``selectors``, watch plumbing in ``watch``, the served kinds in
``resources``); this module is the HTTP front, the in-process API and the thread runner.

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
import concurrent.futures
import contextlib
import copy
import datetime as dt
import json
import pathlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from types import MappingProxyType
from typing import Any, Final, TypeVar

import yaml
from aiohttp import web

from rollouts.sandbox import apierrors, eviction, managedfields, openapi, rbac, tables
from rollouts.sandbox.apierrors import ApiError
from rollouts.sandbox.certs import ServingCertificate, serving_certificate
from rollouts.sandbox.resources import ResourceInfo
from rollouts.sandbox.selectors import (
    FieldSelector,
    LabelSelector,
)
from rollouts.sandbox.store import IN_PROCESS_WRITER, ObjectStore
from rollouts.sandbox.watch import Subscription, Watcher, WatchEvent

__all__ = [
    "ApiEmulator",
    "ApiError",
    "EmulatorThread",
    "LabelSelector",
    "ResourceInfo",
    "Subscription",
    "WatchEvent",
]

Obj = dict[str, Any]
T = TypeVar("T")

_TRUE = ("true", "1", "True", "yes")
_SERVER_VERSION: Final = MappingProxyType({
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.22",
    "compiler": "gc",
    "platform": "linux/amd64",
})


# --------------------------------------------------------------------------------------------
# Misc helpers


def _int_param(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError:
        raise apierrors.bad_request(f"invalid {name}: {value!r}") from None


# --------------------------------------------------------------------------------------------
# The emulator


class ApiEmulator(ObjectStore):
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

    # ----------------------------------------------------------------- thread marshalling

    def _call(self, fn: Callable[[], T]) -> T:
        loop = self._loop
        if loop is None or self._loop_thread == threading.get_ident() or loop.is_closed():
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as e:
                future.set_exception(e)

        loop.call_soon_threadsafe(run)
        return future.result()

    # ----------------------------------------------------------------- in-process API

    def resources(self) -> list[ResourceInfo]:
        return list(self._resources.values())

    def resource_for_kind(self, api_version: str, kind: str) -> ResourceInfo:
        group, _, version = api_version.rpartition("/")
        for info in self._resources.values():
            if info.group == group and info.version == version and info.kind == kind:
                return info
        raise ApiError(404, "NotFound", f"no resource for {api_version}/{kind}")

    def get_object(
        self, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> Obj | None:
        def run() -> Obj | None:
            info = self._info(group, version, plural)
            obj = self._store(info).get((namespace or "", name))
            return self._out(info, obj) if obj is not None else None

        return self._call(run)

    def list_objects(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        def run() -> list[Obj]:
            info = self._info(group, version, plural)
            return [
                self._out(info, o)
                for o in self._select(info, namespace, label_selector, field_selector)
            ]

        return self._call(run)

    def create_object(
        self, group: str, version: str, plural: str, namespace: str | None, body: Obj
    ) -> Obj:
        def run() -> Obj:
            info = self._info(group, version, plural)
            return self._out(info, self._create(info, namespace, copy.deepcopy(body)))

        return self._call(run)

    def replace_object(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        body: Obj,
        subresource: str | None = None,
    ) -> Obj:
        def run() -> Obj:
            info = self._info(group, version, plural)
            return self._out(
                info, self._replace(info, namespace, name, copy.deepcopy(body), subresource)
            )

        return self._call(run)

    def patch_object(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Obj | list[Any],
        subresource: str | None = None,
        *,
        patch_type: str = "merge",
    ) -> Obj:
        """A merge patch (or ``patch_type="json"`` with a list of operations)."""

        def run() -> Obj:
            info = self._info(group, version, plural)
            content_type = (
                "application/json-patch+json"
                if patch_type == "json"
                else "application/merge-patch+json"
            )
            result = self._patch(info, namespace, name, content_type, patch, subresource)
            return self._out(info, result)

        return self._call(run)

    def delete_object(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str = "Background",
    ) -> Obj | None:
        """Delete (or mark for deletion when finalizers remain); None if it did not exist."""

        def run() -> Obj | None:
            info = self._info(group, version, plural)
            if (namespace or "", name) not in self._store(info):
                return None
            return self._out(
                info, self._delete(info, namespace, name, {"propagationPolicy": propagation_policy})
            )

        return self._call(run)

    def apply_manifest(self, manifest: Obj) -> Obj:
        """Create the object, or merge-patch it when it exists (like a naive ``kubectl apply``)."""

        def run() -> Obj:
            body = copy.deepcopy(manifest)
            info = self.resource_for_kind(str(body.get("apiVersion", "")), str(body.get("kind")))
            meta = body.setdefault("metadata", {})
            namespace = (meta.get("namespace") or "default") if info.namespaced else None
            name = meta.get("name")
            if name and (namespace or "", name) in self._store(info):
                result = self._patch(
                    info, namespace, name, "application/merge-patch+json", body, None
                )
            else:
                result = self._create(info, namespace, body)
            return self._out(info, result)

        return self._call(run)

    def apply_server_side(self, manifest: Obj, field_manager: str, *,
                          force: bool = False) -> Obj:
        """Server-side apply of one manifest (PATCH application/apply-patch+yaml) as
        `field_manager`: creates when absent; 409 on a field conflict unless `force`."""

        def run() -> Obj:
            body = copy.deepcopy(manifest)
            info = self.resource_for_kind(str(body.get("apiVersion", "")), str(body.get("kind")))
            meta = body.setdefault("metadata", {})
            namespace = (meta.get("namespace") or "default") if info.namespaced else None
            result = self._patch(info, namespace, str(meta.get("name", "")),
                                 "application/apply-patch+yaml", body, None,
                                 writer=managedfields.Writer(field_manager, force=force))
            return self._out(info, result)

        return self._call(run)

    def apply_yaml(self, text_or_path: str | pathlib.Path) -> list[Obj]:
        """Apply every document of a YAML text or file."""
        path = text_or_path if isinstance(text_or_path, pathlib.Path) else None
        text = path.read_text() if path is not None else str(text_or_path)
        return [self.apply_manifest(doc) for doc in yaml.safe_load_all(text) if doc]

    def subscribe(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        initial: bool = False,
    ) -> Subscription:
        """Await changes in-process. Must be called with a running event loop."""
        loop = asyncio.get_running_loop()

        def run() -> Subscription:
            info = self._info(group, version, plural)
            watcher = Watcher(
                info.key,
                namespace,
                LabelSelector.parse(label_selector),
                FieldSelector.parse(None),
                loop,
            )
            if initial:
                for obj in self._select(info, namespace, label_selector, None):
                    out = self._out(info, obj)
                    watcher.deliver(WatchEvent("ADDED", out, None, self._rv))
            self._watchers[info.key].add(watcher)
            return Subscription(self._unwatch, watcher)

        return self._call(run)

    def _unwatch(self, watcher: Watcher) -> None:
        def run() -> None:
            self._watchers[watcher.key].discard(watcher)

        self._call(run)

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
            return web.json_response(dict(_SERVER_VERSION))
        if parts[0] == "openapi":
            self._count("get", "openapi")
            accept = request.headers.get("Accept", "")
            if accept and "json" not in accept and "*/*" not in accept:
                raise apierrors.generic(406)  # kubectl asks v2 in protobuf: not served
            return web.json_response(self._openapi(parts[1:]))
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
                return web.json_response(self._group_list())
            if len(parts) == 2:
                self._count("get", "discovery")
                return web.json_response(self._group(parts[1]))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise apierrors.generic(404)
        if not rest:
            self._count("get", "discovery")
            return web.json_response(self._resource_list(group, version))
        watch = q.get("watch") in _TRUE
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
        limit = _int_param(q.get("limit"), "limit")
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

    # ----------------------------------------------------------------- discovery bodies

    def _openapi(self, parts: list[str]) -> Obj:
        """/openapi/v2, /openapi/v3 and /openapi/v3/{api/v1 | apis/G/V} (see openapi.py)."""
        by_gv: dict[tuple[str, str], list[ResourceInfo]] = {}
        for info in self._resources.values():
            by_gv.setdefault((info.group, info.version), []).append(info)
        crds = self._objects.get(("apiextensions.k8s.io", "customresourcedefinitions"), {})
        schemas: dict[tuple[str, str, str], Obj] = {}
        for crd in crds.values():
            spec = crd.get("spec", {})
            for version in spec.get("versions") or []:
                found = (version.get("schema") or {}).get("openAPIV3Schema")
                if isinstance(found, dict):
                    schemas[(spec.get("group", ""), version.get("name", ""),
                             spec.get("names", {}).get("kind", ""))] = found
        release = _SERVER_VERSION["gitVersion"]
        documents = {
            (group, version): openapi.group_version_document(
                infos, {kind: s for (g, v, kind), s in schemas.items()
                        if (g, v) == (group, version)}, release)
            for (group, version), infos in by_gv.items()}
        if parts == ["v2"]:
            return openapi.swagger_v2(documents.values(), release)
        if parts == ["v3"]:
            return openapi.v3_root(documents)
        if parts[:1] == ["v3"]:
            rest = parts[1:]
            wanted = (("", rest[1]) if rest[:1] == ["api"] and len(rest) == 2 else
                      (rest[1], rest[2]) if rest[:1] == ["apis"] and len(rest) == 3 else None)
            if wanted is not None and wanted in documents:
                return documents[wanted]
        raise apierrors.generic(404)

    def _group_versions(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for group, version, _ in self._resources:
            versions = groups.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        return groups

    def _group(self, group: str) -> Obj:
        versions = self._group_versions().get(group)
        if not versions or group == "":
            raise apierrors.generic(404)
        ordered = sorted(versions, key=_version_priority)
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in ordered],
            "preferredVersion": {"groupVersion": f"{group}/{ordered[0]}", "version": ordered[0]},
        }

    def _group_list(self) -> Obj:
        groups = [self._group(g) for g in sorted(self._group_versions()) if g]
        for g in groups:
            del g["kind"], g["apiVersion"]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _resource_list(self, group: str, version: str) -> Obj:
        infos = [
            i for (g, v, _), i in sorted(self._resources.items()) if g == group and v == version
        ]
        if not infos:
            raise apierrors.generic(404)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": infos[0].api_version,
            "resources": [r for i in infos for r in i.discovery()],
        }

    # ----------------------------------------------------------------- watch

    async def _watch(
        self,
        request: web.Request,
        info: ResourceInfo,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> web.StreamResponse:
        q = request.query
        timeout = _int_param(q.get("timeoutSeconds"), "timeoutSeconds")
        bookmarks = q.get("allowWatchBookmarks") in _TRUE
        send_initial = q.get("sendInitialEvents") in _TRUE
        rv_text = q.get("resourceVersion") or ""
        since = _int_param(rv_text, "resourceVersion")
        watcher = Watcher(
            info.key,
            namespace,
            LabelSelector.parse(label_selector),
            FieldSelector.parse(field_selector),
            asyncio.get_running_loop(),
        )
        initial: list[Obj] = []
        expired = False
        # No await between the snapshot/replay and the registration: nothing can slip between.
        if since is None or since == 0 or send_initial:
            for obj in self._select(info, namespace, label_selector, field_selector):
                initial.append({"type": "ADDED", "object": self._wire(info, obj)})
        elif since < self._history_floor:
            expired = True
        else:
            for item in self._history:
                if item.rv > since and item.key == info.key:
                    seen = watcher.translate(item.event)
                    if seen is not None:
                        initial.append(self._event_json(info, seen))
        if not expired:
            self._watchers[info.key].add(watcher)

        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if expired:
                status = ApiError(
                    410, "Expired", f"too old resource version: {since} ({self._history_floor + 1})"
                )
                await self._send(response, {"type": "ERROR", "object": status.status()})
                return response
            for event in initial:
                await self._send(response, event)
            if bookmarks:
                annotations = {"k8s.io/initial-events-end": "true"} if send_initial else None
                await self._send(response, self._bookmark(info, annotations))
            await self._stream(request, response, info, watcher, timeout, bookmarks)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self._watchers[info.key].discard(watcher)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    async def _stream(
        self,
        request: web.Request,
        response: web.StreamResponse,
        info: ResourceInfo,
        watcher: Watcher,
        timeout: int | None,
        bookmarks: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout is not None else None
        next_bookmark = loop.time() + self.bookmark_interval
        while True:
            now = loop.time()
            if deadline is not None and now >= deadline:
                if bookmarks:
                    await self._send(response, self._bookmark(info))
                return
            if self._stopping is not None and self._stopping.is_set():
                return
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            wake = min(
                x
                for x in (deadline, next_bookmark if bookmarks else None, now + 1.0)
                if x is not None
            )
            if bookmarks and now >= next_bookmark:
                # Due bookmarks go out even while events are queued: a busy stream must not
                # starve them (and they carry the current resourceVersion anyway).
                await self._send(response, self._bookmark(info))
                next_bookmark = loop.time() + self.bookmark_interval
                continue
            try:
                # Take what is already queued without waiting: on Python 3.11 a zero
                # timeout cancels queue.get() before it runs, even with items waiting.
                event = watcher.queue.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), max(0.0, wake - now))
                except TimeoutError:
                    continue
            if event is None:
                return
            await self._send(response, self._event_json(info, event))

    def _event_json(self, info: ResourceInfo, event: WatchEvent) -> Obj:
        # Events are never changed once made: serialise without copying.
        return {"type": event.type, "object": self._wire(info, event.object)}

    def _bookmark(self, info: ResourceInfo, annotations: dict[str, str] | None = None) -> Obj:
        meta: Obj = {"resourceVersion": str(self._rv)}
        if annotations:
            meta["annotations"] = annotations
        return {
            "type": "BOOKMARK",
            "object": {"kind": info.kind, "apiVersion": info.api_version, "metadata": meta},
        }

    @staticmethod
    async def _send(response: web.StreamResponse, event: Obj) -> None:
        await response.write(json.dumps(event).encode() + b"\n")


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", version)
    if not m:
        return (3, 0, 0)
    stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0))


# --------------------------------------------------------------------------------------------
# Threaded host


class EmulatorThread:
    """Runs an ApiEmulator (and optionally a kubelet simulator) on its own loop in a daemon
    thread, for synchronous code and for tests whose loop must stay free."""

    def __init__(self, emulator: ApiEmulator, *, kubelet: Any = None) -> None:
        self.emulator = emulator
        self.kubelet = kubelet
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop_requested: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return self.emulator.url

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="api-emulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as e:  # reported to the starting thread
            self._error = e
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop_requested = asyncio.Event()
        await self.emulator.start()
        try:
            if self.kubelet is not None:
                await self.kubelet.start()
            self._ready.set()
            await self._stop_requested.wait()
        finally:
            if self.kubelet is not None:
                await self.kubelet.stop()
            await self.emulator.stop()

    def run(self, coro_fn: Callable[[], Any]) -> Any:
        """Run ``coro_fn()`` on the emulator's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro_fn(), self._loop).result()

    def stop(self) -> None:
        if self._loop is not None and self._stop_requested is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop_requested.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> EmulatorThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def iter_yaml_documents(text: str) -> Iterator[Obj]:
    """Non-empty documents of a multi-document YAML text."""
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict):
            yield doc
