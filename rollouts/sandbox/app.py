"""A simulated application for the sandbox: request metrics per ReplicaSet, for Prometheus.

Every ReplicaSet with ready pods gets its own small HTTP server on 127.0.0.1 (a random free
port) answering ``GET /metrics`` in the Prometheus text format, and Prometheus scrapes it.
The traffic is synthetic and needs no background loop: each ready pod serves
``rps_per_pod`` requests per second (10 by default) for **each Service whose selector matches
the pod**, and the counters are advanced, whenever they are read or the inputs change, by the
time elapsed since. How the requests go depends on the pod image (see `profile_for_image`):

============================== ========== ======================= ==================
image tag contains             5xx share  latency                 meaning
============================== ========== ======================= ==================
``bad``                        30 %       slow (p99 ~ 2.35 s)     a broken release
``slow``                       0.5 %      slow                    a latency regression
``regress``                    5 %        fast                    10x the errors of good
``idle``                       --         --                      no traffic at all
anything else                  0.5 %      fast (p99 ~ 75 ms)      a good release
============================== ========== ======================= ==================

Shares are exact: counts are integers derived from the cumulative request count with
fractions, so over any long enough window the ratio is what the table says. Besides 5xx
(code ``500``) 2 % of the requests get a ``404`` (not an error for the catalog templates).

Series and labels
-----------------
``http_requests_total{service, namespace, code, rollout, rollouts_pod_template_hash,
replicaset}`` (counter) and ``http_request_duration_seconds_bucket/_sum/_count{service,
namespace, le, ...the same}`` (histogram, seconds), plus ``sandbox_app_ready_pods{namespace,
rollout, rollouts_pod_template_hash, replicaset}`` (gauge, always present for a served
ReplicaSet).

``service`` is the name of the Kubernetes **Service the requests were addressed to**, as
Istio's ``destination_service_name`` or an ingress would report it: a pod behind
``web``, ``web-stable`` and ``web-canary`` reports three streams. Because the controller pins
the ``canaryService`` (blue-green: ``previewService``, then ``activeService``) selector to the
revision being judged, ``service=<canaryService>`` selects exactly the canary's traffic, which
is what the catalog templates (``analysis/http-success-rate.yaml``, ``http-latency-p99``)
expect in their ``service`` arg::

    args:
      - {name: service, value: web-canary}
      - {name: namespace, value: default}

Pods behind no Service get no traffic and export no request series. As in a real cluster,
the canary Service served the stable pods until the rollout started, and a ``rate()`` window
reaching back before the switch mixes both: give a step analysis an ``initialDelay`` of at
least the window. ``rollouts_pod_template_hash`` selects a revision regardless of Services
(e.g. with ``valueFrom: {podTemplateHashValue: Latest}`` in a template of your own).

Endpoints and Prometheus targets
--------------------------------
Prometheus 2.42 applies target changes in 5 s batches (discovery, then the scrape manager),
so a freshly registered target is first scraped up to ~10 s late. The simulator therefore
keeps a few endpoints registered ahead of need (``spare_endpoints``): a ReplicaSet that gets
ready pods takes a registered idle endpoint and is scraped at the next scrape interval; the
endpoint goes back to the pool (exporting nothing, so its series go stale at once) when the
ReplicaSet has no ready pod left or is deleted. When the pool runs dry a new endpoint is
started and registered with `PrometheusServer.set_targets`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

from aiohttp import web

from rollouts.sandbox.apiserver import ApiEmulator, Subscription
from rollouts.sandbox.routes import ROUTE_KINDS, route_groups

__all__ = [
    "BAD",
    "GOOD",
    "IDLE",
    "LATENCY_BUCKETS",
    "SLOW",
    "AppSimulator",
    "Profile",
    "ReplicaSetTraffic",
    "profile_for_image",
    "profile_for_pod_spec",
]

_LOG = logging.getLogger(__name__)
_RS = ("apps", "v1", "replicasets")
_SERVICES = ("", "v1", "services")
HASH_LABEL = "rollouts-pod-template-hash"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Upper bounds (seconds) of the histogram buckets, as the Prometheus client libraries' default.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


@dataclass(frozen=True)
class Profile:
    """How a revision answers: request rate, error and not-found shares, latency.

    `latency` maps bucket upper bounds to the share of requests at or below them
    (cumulative, non-decreasing; bounds not listed are interpolated as "no more requests");
    `mean_latency` feeds `_sum`.
    """

    name: str
    error_ratio: Fraction
    not_found_ratio: Fraction = Fraction(1, 50)
    latency: Mapping[float, Fraction] = field(default_factory=dict)
    mean_latency: float = 0.02
    traffic: bool = True

    def cumulative(self, bound: float) -> Fraction:
        """Share of requests that took at most `bound` seconds."""
        share = Fraction(0)
        for le, value in sorted(self.latency.items()):
            if le <= bound:
                share = value
        return share


_FAST = {0.01: Fraction(40, 100), 0.025: Fraction(90, 100), 0.05: Fraction(98, 100),
         0.1: Fraction(1)}
_SLOW = {0.1: Fraction(10, 100), 0.25: Fraction(40, 100), 0.5: Fraction(70, 100),
         1.0: Fraction(90, 100), 2.5: Fraction(1)}

GOOD = Profile("good", Fraction(1, 200), latency=_FAST, mean_latency=0.02)
BAD = Profile("bad", Fraction(3, 10), latency=_SLOW, mean_latency=0.6)
SLOW = Profile("slow", Fraction(1, 200), latency=_SLOW, mean_latency=0.6)
# Ten times the errors of a good release, yet 95% of requests still succeed: what a
# success-rate threshold of 95% lets through and a comparison with a baseline does not.
REGRESS = Profile("regress", Fraction(1, 20), latency=_FAST, mean_latency=0.02)
IDLE = Profile("idle", Fraction(0), latency=_FAST, traffic=False)


def _tag(image: str) -> str:
    """The tag (or digest) of an image reference; "latest" when there is none."""
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return name.split("@", 1)[1]
    return name.split(":", 1)[1] if ":" in name else "latest"


def profile_for_image(image: str) -> Profile:
    """The profile an image's tag asks for: "bad", "slow", "regress", "idle" or good."""
    tag = _tag(image).lower()
    for marker, profile in (("bad", BAD), ("slow", SLOW), ("regress", REGRESS),
                            ("idle", IDLE)):
        if marker in tag:
            return profile
    return GOOD


def profile_for_pod_spec(spec: Mapping[str, Any]) -> Profile:
    """The worst profile among a pod's containers (one bad container breaks the pod)."""
    ranked = (BAD, SLOW, REGRESS, IDLE)
    found = {profile_for_image(str(c.get("image", ""))).name
             for c in spec.get("containers") or ()}
    for profile in ranked:
        if profile.name in found:
            return profile
    return GOOD


# ---------------------------------------------------------------------------------------------
# The traffic of one ReplicaSet (pure: the clock is passed in)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _le(bound: float) -> str:
    return repr(bound) if not float(bound).is_integer() else f"{bound:.1f}"


@dataclass
class _Stream:
    """Requests addressed to one Service: exact counts derived from the running total."""

    requests: int = 0
    carry: float = 0.0  # fractional request not yet counted


class ReplicaSetTraffic:
    """Synthetic request counters of one ReplicaSet's pods.

    `advance(now)` moves the counters by ``rps_per_pod * ready * elapsed`` for each Service
    currently matching the pods; `set_ready` / `set_services` advance first, so a change
    applies from the moment it was seen. `render(now)` advances and returns the exposition.
    """

    def __init__(self, *, namespace: str, replicaset: str, rollout: str, pod_hash: str,
                 pod_labels: Mapping[str, str], profile: Profile, now: float,
                 rps_per_pod: float = 10.0) -> None:
        self.namespace = namespace
        self.replicaset = replicaset
        self.rollout = rollout
        self.pod_hash = pod_hash
        self.pod_labels = dict(pod_labels)
        self.profile = profile
        self.rps_per_pod = rps_per_pod
        self.ready = 0
        self.services: tuple[str, ...] = ()
        # Requests per second addressed to a Service behind a weighted route (see
        # rollouts.sandbox.routes); other Services get `rps_per_pod` per ready pod.
        self.rates: dict[str, float] = {}
        self.streams: dict[str, _Stream] = {}
        self._last = now

    def advance(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._last = max(self._last, now)
        if not self.profile.traffic or self.ready <= 0:
            for service in self.services:
                self.streams.setdefault(service, _Stream())
            return
        for service in self.services:
            stream = self.streams.setdefault(service, _Stream())
            rate = self.rates.get(service, self.rps_per_pod * self.ready)
            total = stream.carry + rate * elapsed
            whole = math.floor(total)
            stream.requests += whole
            stream.carry = total - whole

    def set_ready(self, ready: int, now: float) -> None:
        self.advance(now)
        self.ready = max(0, ready)

    def set_services(self, services: Iterable[str], now: float) -> None:
        self.advance(now)
        self.services = tuple(sorted(set(services)))

    def set_rates(self, rates: Mapping[str, float], now: float) -> None:
        if rates != self.rates:
            self.advance(now)
            self.rates = dict(rates)

    def counts(self, service: str) -> dict[str, int]:
        """Requests to `service` by status code (200, 404, 500)."""
        stream = self.streams.get(service) or _Stream()
        total = stream.requests
        errors = math.floor(total * self.profile.error_ratio)
        not_found = math.floor(total * self.profile.not_found_ratio)
        return {"200": total - errors - not_found, "404": not_found, "500": errors}

    def buckets(self, service: str) -> list[tuple[str, int]]:
        stream = self.streams.get(service) or _Stream()
        total = stream.requests
        out = [(_le(b), math.floor(total * self.profile.cumulative(b))) for b in LATENCY_BUCKETS]
        out.append(("+Inf", total))
        return out

    def _common(self) -> list[tuple[str, str]]:
        return [("rollout", self.rollout), ("rollouts_pod_template_hash", self.pod_hash),
                ("replicaset", self.replicaset)]

    def samples(self) -> dict[str, list[tuple[str, float]]]:
        """Metric family -> [(labels text, value)] for what is exported now."""
        families: dict[str, list[tuple[str, float]]] = {
            "sandbox_app_ready_pods": [
                (_labels([("namespace", self.namespace), *self._common()]), self.ready)],
            "http_requests_total": [],
            "http_request_duration_seconds": [],
        }
        for service in self.services:
            base = [("service", service), ("namespace", self.namespace)]
            for code, value in self.counts(service).items():
                families["http_requests_total"].append(
                    (_labels([*base, ("code", code), *self._common()]), value))
            histogram = families["http_request_duration_seconds"]
            for le, value in self.buckets(service):
                histogram.append(("_bucket" + _labels([*base, ("le", le), *self._common()]),
                                  value))
            total = (self.streams.get(service) or _Stream()).requests
            histogram.append(("_sum" + _labels([*base, *self._common()]),
                              round(total * self.profile.mean_latency, 6)))
            histogram.append(("_count" + _labels([*base, *self._common()]), total))
        return families

    def render(self, now: float) -> str:
        self.advance(now)
        return render_exposition([self])


_FAMILIES = (
    ("http_requests_total", "counter", "Requests served, by the Service they were sent to."),
    ("http_request_duration_seconds", "histogram", "Request latency in seconds."),
    ("sandbox_app_ready_pods", "gauge", "Ready pods of the simulated ReplicaSet."),
)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_exposition(apps: Iterable[ReplicaSetTraffic]) -> str:
    """The Prometheus text format (0.0.4) for some ReplicaSets (families kept together)."""
    collected = [app.samples() for app in apps]
    lines: list[str] = []
    for family, kind, help_text in _FAMILIES:
        rows = [row for samples in collected for row in samples.get(family, ())]
        if not rows:
            continue
        lines.append(f"# HELP {family} {help_text}")
        lines.append(f"# TYPE {family} {kind}")
        # Histogram rows carry their suffix (_bucket, _sum, _count) before the labels.
        lines.extend(f"{family}{suffixed} {_number(value)}" for suffixed, value in rows)
    return "\n".join(lines) + ("\n" if lines else "")


# ---------------------------------------------------------------------------------------------
# Endpoints and the simulator


class _Targets(Protocol):
    def set_targets(self, targets: Iterable[str], *, job: str | None = None) -> None: ...


class _Endpoint:
    """One HTTP server exporting one ReplicaSet's metrics (or nothing while idle)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.app: ReplicaSetTraffic | None = None
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.scrapes = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        application = web.Application()
        application.router.add_get("/metrics", self._metrics)
        self.runner = web.AppRunner(application, access_log=None)
        await self.runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self.runner, sock).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        text = self.app.render(self.clock()) if self.app is not None else ""
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


def _selector_matches(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    # A Service without a selector has no automatic endpoints.
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


def _owner_rollout(rs: Mapping[str, Any]) -> str:
    for ref in (rs.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return str(ref.get("name") or "")
    return ""


class AppSimulator:
    """Serves the simulated application's metrics for every ReplicaSet with ready pods.

    Runs its own event loop in a daemon thread (`start()` / `stop()`), fed by in-process
    watches of ReplicaSets and Services on `emulator`. `prometheus` (anything with
    `set_targets`) is told the endpoints under `job`.
    """

    def __init__(
        self,
        emulator: ApiEmulator,
        prometheus: _Targets | None = None,
        *,
        namespace: str | None = None,
        job: str = "app",
        rps_per_pod: float = 10.0,
        spare_endpoints: int = 4,
        profile: Callable[[Mapping[str, Any]], Profile] = profile_for_pod_spec,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emulator = emulator
        self.prometheus = prometheus
        self.namespace = namespace
        self.job = job
        self.rps_per_pod = rps_per_pod
        self.spare_endpoints = spare_endpoints
        self.profile = profile
        self.clock = clock
        self.apps: dict[tuple[str, str], ReplicaSetTraffic] = {}  # (ns, rs name) -> traffic
        self._services: dict[tuple[str, str], dict[str, str]] = {}  # (ns, name) -> selector
        self._routes: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name)
        self._endpoints: list[_Endpoint] = []
        self._assigned: dict[tuple[str, str], _Endpoint] = {}
        self._subs: list[Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    # -- lifecycle (sync, own thread) ------------------------------------------------------

    def start(self) -> AppSimulator:
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="sandbox-app", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> AppSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        await self.astart()
        try:
            self._ready.set()
            await self._stop.wait()
        finally:
            await self.astop()

    # -- lifecycle (async, on the caller's loop) -------------------------------------------

    async def astart(self) -> None:
        for _ in range(self.spare_endpoints):
            await self._new_endpoint()
        self._publish()
        svc_sub = self.emulator.subscribe(*_SERVICES, namespace=self.namespace, initial=True)
        rs_sub = self.emulator.subscribe(*_RS, namespace=self.namespace, initial=True)
        self._subs = [svc_sub, rs_sub]
        # Whatever order the two watches deliver in, a Service event re-matches every
        # ReplicaSet of its namespace.
        self._tasks = [
            asyncio.create_task(self._pump(svc_sub, self._on_service), name="app-services"),
            asyncio.create_task(self._pump(rs_sub, self._on_replica_set), name="app-rs"),
        ]
        for group, version, plural in ROUTE_KINDS:
            try:
                sub = self.emulator.subscribe(group, version, plural, namespace=self.namespace,
                                              initial=True)
            except Exception:  # the kind is not served (its CRD not applied)
                continue
            self._subs.append(sub)
            self._tasks.append(asyncio.create_task(
                self._pump(sub, self._on_route(plural)), name=f"app-{plural}"))

    async def astop(self) -> None:
        for sub in self._subs:
            sub.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for endpoint in self._endpoints:
            await endpoint.stop()
        self._subs, self._tasks, self._endpoints = [], [], []
        self._assigned.clear()

    # -- queries (any thread) --------------------------------------------------------------

    def endpoints(self) -> dict[str, str]:
        """ReplicaSet name -> "host:port" of its metrics endpoint, for the served ones."""
        return {key[1]: ep.address for key, ep in list(self._assigned.items())}

    def targets(self) -> list[str]:
        """Every registered endpoint, idle ones included."""
        return [ep.address for ep in list(self._endpoints)]

    def wait_scraped(self, timeout: float = 30.0) -> None:
        """Block until every registered endpoint has been scraped (Prometheus has taken
        the targets up): from then on a ReplicaSet's series appear within one interval."""
        deadline = time.monotonic() + timeout
        while any(ep.scrapes == 0 for ep in list(self._endpoints)):
            if time.monotonic() >= deadline:
                idle = [ep.address for ep in self._endpoints if ep.scrapes == 0]
                raise TimeoutError(f"endpoints not scraped within {timeout}s: {idle}")
            time.sleep(0.1)

    # -- events ----------------------------------------------------------------------------

    async def _pump(self, sub: Subscription, handle: Callable[[str, dict[str, Any]],
                                                               Any]) -> None:
        async for event in sub:
            try:
                result = handle(event.type, event.object)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # one odd object must not stop the simulator
                _LOG.exception("sandbox app: handling a %s event failed", event.type)

    def _on_service(self, event_type: str, svc: dict[str, Any]) -> None:
        meta = svc.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if event_type == "DELETED":
            self._services.pop(key, None)
        else:
            self._services[key] = dict((svc.get("spec") or {}).get("selector") or {})
        now = self.clock()
        for app_key, app in self.apps.items():
            if app_key[0] == key[0]:
                app.set_services(self._services_for(app), now)
        self._rebalance(now)

    def _on_route(self, plural: str) -> Callable[[str, dict[str, Any]], None]:
        def handle(event_type: str, body: dict[str, Any]) -> None:
            meta = body.get("metadata") or {}
            key = (plural, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            if event_type == "DELETED":
                self._routes.pop(key, None)
            else:
                self._routes[key] = body
            self._rebalance(self.clock())
        return handle

    def _rebalance(self, now: float) -> None:
        """Request rates of the Services behind weighted routes: the pods behind a route
        serve `rps_per_pod` each in all, split between its Services by the route's weights
        and within a Service by ready pods."""
        by_namespace: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for (plural, namespace, _), body in self._routes.items():
            by_namespace.setdefault(namespace, {}).setdefault(plural, []).append(body)
        rates: dict[tuple[str, str], dict[str, float]] = {key: {} for key in self.apps}
        for namespace, objects in by_namespace.items():
            apps = [(k, a) for k, a in self.apps.items() if k[0] == namespace and a.ready > 0]
            for group in route_groups(objects):
                behind = [(k, a) for k, a in apps if set(a.services) & set(group)]
                pods = sum(a.ready for _, a in behind)
                for service, share in group.items():
                    serving = [(k, a) for k, a in behind if service in a.services]
                    ready = sum(a.ready for _, a in serving)
                    for key, app in serving:
                        rates[key][service] = float(
                            self.rps_per_pod * pods * share * app.ready / ready)
        for key, app in self.apps.items():
            app.set_rates(rates[key], now)

    def _services_for(self, app: ReplicaSetTraffic) -> list[str]:
        return [name for (ns, name), selector in self._services.items()
                if ns == app.namespace and _selector_matches(selector, app.pod_labels)]

    async def _on_replica_set(self, event_type: str, rs: dict[str, Any]) -> None:
        meta = rs.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        ready = 0 if event_type == "DELETED" else int(
            (rs.get("status") or {}).get("readyReplicas") or 0)
        now = self.clock()
        app = self.apps.get(key)
        if ready <= 0:
            if app is not None:
                app.set_ready(0, now)
            self._release(key)
            if event_type == "DELETED":
                self.apps.pop(key, None)
            self._rebalance(now)
            return
        if app is None:
            template = (rs.get("spec") or {}).get("template") or {}
            labels = dict((template.get("metadata") or {}).get("labels") or {})
            app = ReplicaSetTraffic(
                namespace=key[0], replicaset=key[1], rollout=_owner_rollout(rs),
                pod_hash=str(labels.get(HASH_LABEL) or (meta.get("labels") or {}).get(
                    HASH_LABEL) or ""),
                pod_labels=labels, profile=self.profile(template.get("spec") or {}), now=now,
                rps_per_pod=self.rps_per_pod)
            app.set_services(self._services_for(app), now)
            self.apps[key] = app
        app.set_ready(ready, now)
        if key not in self._assigned:
            endpoint = next((ep for ep in self._endpoints if ep.app is None), None)
            if endpoint is None:
                endpoint = await self._new_endpoint()
                self._publish()
            endpoint.app = app
            self._assigned[key] = endpoint
        self._rebalance(now)

    def _release(self, key: tuple[str, str]) -> None:
        endpoint = self._assigned.pop(key, None)
        if endpoint is not None:
            endpoint.app = None

    async def _new_endpoint(self) -> _Endpoint:
        endpoint = _Endpoint(self.clock)
        await endpoint.start()
        self._endpoints.append(endpoint)
        return endpoint

    def _publish(self) -> None:
        if self.prometheus is not None:
            self.prometheus.set_targets(self.targets(), job=self.job)
