"""What the controller process tells the outside: Prometheus metrics, liveness and readiness.

One `Telemetry` object per controller process (passed in, never module state) owns a
prometheus-client registry and an aiohttp server with three endpoints:

* ``/metrics`` -- the Prometheus text format (names below; `docs/operations.md` lists them
  with the alerts worth setting);
* ``/healthz`` -- 200 while the process serves HTTP at all (the liveness probe);
* ``/readyz`` -- 200 only on the replica that acts (kopf peering: no live peer with the same or
  a higher priority) once its watch caches are synced; 503 otherwise. Like the
  kube-apiserver's own ``/readyz`` it names its checks (``acting``, ``caches-synced``), prints
  each with ``?verbose`` and skips one with ``?exclude=NAME``. The chart's readiness probe
  excludes ``acting``: a standby replica that never becomes Ready would stall every Deployment
  rollout (``helm --wait``, ``kubectl rollout status``) and make the PodDisruptionBudget block
  node drains; `rollouts_controller_acting` says which replica acts.

The operator feeds it through a handful of calls: `observe_rollout` and
`observe_analysis_run` from its watch-event handlers, `timed` around each reconcile pass,
`instrument` on the metric providers and `observe_request` on the Kubernetes client.

Cardinality stays bounded: per-Rollout series carry only namespace and name (and a phase and
strategy from fixed sets); API requests are counted by verb and status code, never by path;
histograms carry no per-object label.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, Final, TypeVar

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from rollouts.analysis.runner import Provider, ProviderSet
from rollouts.errors import ConflictError, KubeError, NotFoundError, RolloutsError
from rollouts.kube.client import KubeClient
from rollouts.models.analysis import COMPLETED_PHASES
from rollouts.models.rollout import GROUP, VERSION

T = TypeVar("T")
Key = tuple[str, str]  # (namespace, name)

log = logging.getLogger("rollouts.telemetry")

PHASES: Final = frozenset({"Healthy", "Progressing", "Paused", "Degraded"})
STRATEGIES: Final = ("canary", "blueGreen")
# Reconcile passes last from a millisecond (nothing to do) to a few seconds (many writes).
RECONCILE_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                            2.5, 5.0, 10.0, 30.0)
# Measurements include the provider's own query time and, for jobs, polling.
MEASUREMENT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                              30.0, 60.0, 300.0)
# How long a peering verdict is trusted before /readyz reads the peering object again.
PEERING_TTL: Final = 5.0


class MetricsAddressError(RolloutsError):
    """The metrics endpoint cannot be served where it was asked (bad or busy address)."""


@dataclasses.dataclass(frozen=True)
class Peering:
    """Where kopf keeps this replica's peering record and how it ranks against others."""

    name: str
    identity: str
    priority: int
    # None: the cluster-wide ClusterKopfPeering; otherwise one KopfPeering per namespace.
    namespaces: tuple[str, ...] | None
    # True: no peering (the only replica). None: kopf's auto-detection (standalone when the
    # peering object does not exist).
    standalone: bool | None = None


def acting_verdict(peers: Mapping[str, Any], identity: str, priority: int,
                   now: dt.datetime) -> tuple[bool, str]:
    """kopf's rule from a peering object's status: act unless a live peer has a higher or
    the same priority (kopf pauses every replica of equal priority). Our own record must be
    there: kopf writes it before it acts.

    E.g. peers {a: {priority: 2}, b: {priority: 1}} (both seen recently): a acts, b stands by.
    """
    if identity not in peers:
        return False, f"this replica ({identity}) is not registered in the peering yet"
    for other, record in peers.items():
        if other == identity or not isinstance(record, Mapping):
            continue
        if _peer_dead(record, now):
            continue
        their = int(record.get("priority") or 0)
        if their > priority:
            return False, f"standby: {other} has a higher priority ({their} > {priority})"
        if their == priority:
            return False, f"standby: {other} has the same priority ({their}); kopf pauses both"
    return True, "acting"


def _peer_dead(record: Mapping[str, Any], now: dt.datetime) -> bool:
    lastseen = record.get("lastseen")
    if not isinstance(lastseen, str):
        return False  # kopf treats a peer without lastseen as just seen
    try:
        seen = dt.datetime.fromisoformat(lastseen)
    except ValueError:
        return False
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=dt.UTC)
    return seen + dt.timedelta(seconds=int(record.get("lifetime") or 60)) <= now


class _TimedProvider:
    """A metric provider whose `measure` calls are timed; everything else is the provider's."""

    def __init__(self, inner: Provider, name: str, histogram: Histogram,
                 clock: Callable[[], float]) -> None:
        self._inner, self._name, self._histogram, self._clock = inner, name, histogram, clock

    async def measure(self, *args: Any, **kwargs: Any) -> Any:
        started = self._clock()
        try:
            return await self._inner.measure(*args, **kwargs)
        finally:
            self._histogram.labels(provider=self._name).observe(self._clock() - started)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __getattr__(self, name: str) -> Any:  # e.g. the job provider's `terminate`
        return getattr(self._inner, name)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class RolloutSeries:
    """The per-Rollout series (phase and strategy, step, desired and actual canary weight):
    one tuple per Rollout, made into samples when scraped. A labelled child of a
    prometheus_client Gauge is an object with its own value, lock and attributes: the four
    per Rollout were 2.9 MiB at 1,000 Rollouts (docs/benchmarks.md, "Memory at 1,000
    Rollouts, round 4")."""

    def __init__(self) -> None:
        # (namespace, name) -> (phase, strategy, step, desired weight, weight); None: no value
        self.rollouts: dict[Key, tuple[str, str, float | None, float | None, float | None]] = {}

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        key = ["namespace", "name"]
        return (
            GaugeMetricFamily("rollouts_rollout_info", "One series per Rollout (value 1) with "
                              "its phase and strategy.", labels=[*key, "phase", "strategy"]),
            GaugeMetricFamily("rollouts_rollout_current_step_index", "Index of the canary "
                              "step the Rollout is at (status.currentStepIndex).", labels=key),
            GaugeMetricFamily("rollouts_rollout_canary_desired_weight", "Canary traffic "
                              "weight the current step asks for, in percent.", labels=key),
            GaugeMetricFamily("rollouts_rollout_canary_weight", "Canary traffic weight now in "
                              "effect (status.canary.weights.canary.weight), in percent.",
                              labels=key),
        )

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        info, *numbers = families
        for (namespace, name), (phase, strategy, *values) in list(self.rollouts.items()):
            info.add_metric([namespace, name, phase, strategy], 1.0)
            for family, value in zip(numbers, values, strict=True):
                if value is not None:
                    family.add_metric([namespace, name], value)
        return iter(families)


class Telemetry:
    """Metrics registry, the controller's view of its own role, and the HTTP endpoints."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 process_metrics: bool = True) -> None:
        self.clock, self.wall_clock = clock, wall_clock
        self.registry = CollectorRegistry(auto_describe=True)
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        r = self.registry
        self.rollout_series = RolloutSeries()
        r.register(self.rollout_series)
        self.reconcile_seconds = Histogram(
            "rollouts_reconcile_duration_seconds", "Duration of one Rollout reconcile pass "
            "(observe, plan, execute) by outcome (success, conflict, error).", ["outcome"],
            buckets=RECONCILE_BUCKETS, registry=r)
        self.api_requests = Counter(
            "rollouts_kube_api_requests", "Requests the controller's Kubernetes client sent, "
            "by verb and HTTP status code (error: no response).", ["verb", "code"],
            registry=r)
        self.analysis_runs = Counter(
            "rollouts_analysis_runs_completed", "AnalysisRuns seen reaching a completed "
            "phase (Successful, Failed, Error, Inconclusive).", ["phase"], registry=r)
        self.measurement_seconds = Histogram(
            "rollouts_analysis_measurement_duration_seconds", "Duration of one metric "
            "measurement by provider.", ["provider"], buckets=MEASUREMENT_BUCKETS,
            registry=r)
        self.notifications = Counter(
            "rollouts_notifications_delivered", "Notification deliveries finished, by "
            "service kind, trigger and result (sent, failed).", ["kind", "trigger", "result"],
            registry=r)
        self.acting = Gauge(
            "rollouts_controller_acting", "1 on the replica that acts (kopf peering), 0 on a "
            "standby.", registry=r)
        self.synced = Gauge(
            "rollouts_controller_caches_synced", "1 once the controller's watch caches have "
            "been filled.", registry=r)
        for phase in sorted(COMPLETED_PHASES):
            self.analysis_runs.labels(phase=phase)
        # Last phase seen per AnalysisRun (to count a completion once, on its transition).
        self._run_phases: dict[Key, str] = {}
        self._client: KubeClient | None = None
        self._peering: Peering | None = None
        self._served: tuple[str, ...] | None = ()
        self._caches_synced = False  # kopf's and the operator's own watches' alike
        self._kopf_synced = False
        self._watches_synced = True  # until `expect_watches`
        self._verdict: tuple[float, bool, str] | None = None
        self.port: int | None = None  # bound by `serve`

    # --- hooks the operator calls ------------------------------------------------------------

    def set_scope(self, peering: Peering | None, namespaces: tuple[str, ...] | None) -> None:
        """This replica's peering and the namespaces it serves (None: all), for /readyz."""
        self._peering, self._served = peering, namespaces

    def bind(self, client: KubeClient) -> None:
        """The client /readyz reads the peering object with (the controller's own)."""
        self._client = client

    def observe_request(self, verb: str, code: int | None) -> None:
        self.api_requests.labels(verb=verb, code="error" if code is None else str(code)).inc()

    def observe_notification(self, kind: str, trigger: str, result: str) -> None:
        self.notifications.labels(kind=kind, trigger=trigger, result=result).inc()

    def mark_synced(self) -> None:
        """kopf runs no non-index handler before every index's initial listing is done, so
        any handler call means kopf's caches are filled."""
        self._kopf_synced = True
        self._publish_synced()

    def expect_watches(self) -> None:
        """The operator's own watches (rollouts.controller.caches) must list first, too."""
        self._watches_synced = False

    def mark_watches_synced(self) -> None:
        self._watches_synced = True
        self._publish_synced()

    def _publish_synced(self) -> None:
        if self._kopf_synced and self._watches_synced and not self._caches_synced:
            self._caches_synced = True
            self.synced.set(1)

    def observe_rollout(self, body: Mapping[str, Any], event_type: str | None) -> None:
        """The Rollout's info, step and weight series, as its watch event shows them: one
        tuple stored (most events are our own status writes' echoes; a labelled Gauge's
        lookups on each were ~1 % of the controller's CPU, docs/benchmarks.md "CPU per pass,
        round 4"), made into samples when scraped."""
        self.mark_synced()
        metadata = body.get("metadata") or {}
        key: Key = (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
        if event_type == "DELETED":
            self.rollout_series.rollouts.pop(key, None)
            return
        status = body.get("status") or {}
        strategy = (body.get("spec") or {}).get("strategy") or {}
        canary = status.get("canary") or {}
        weight = ((canary.get("weights") or {}).get("canary") or {}).get("weight")
        self.rollout_series.rollouts[key] = (
            str(status.get("phase")) if status.get("phase") in PHASES else "Unknown",
            next((s for s in STRATEGIES if s in strategy), "unknown"),
            _number(status.get("currentStepIndex")), _number(canary.get("desiredWeight")),
            _number(weight))

    def observe_analysis_run(self, body: Mapping[str, Any], event_type: str | None) -> None:
        self.mark_synced()
        metadata = body.get("metadata") or {}
        key: Key = (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
        if event_type == "DELETED":
            self._run_phases.pop(key, None)
            return
        phase = str((body.get("status") or {}).get("phase") or "")
        previous = self._run_phases.get(key)
        # Seen running and now completed: counted once. First seen completed (e.g. after a
        # restart): not counted, it was counted by the process that saw it finish.
        if phase in COMPLETED_PHASES and previous is not None and previous not in COMPLETED_PHASES:
            self.analysis_runs.labels(phase=phase).inc()
        self._run_phases[key] = phase

    def timed(self, one_pass: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """`one_pass` with its duration recorded by outcome (a cancelled pass is not)."""

        async def timed_pass() -> T:
            started = self.clock()
            try:
                result = await one_pass()
            except ConflictError:
                self.reconcile_seconds.labels(outcome="conflict").observe(self.clock() - started)
                raise
            except Exception:
                self.reconcile_seconds.labels(outcome="error").observe(self.clock() - started)
                raise
            self.reconcile_seconds.labels(outcome="success").observe(self.clock() - started)
            return result

        return timed_pass

    def instrument(self, providers: ProviderSet) -> ProviderSet:
        """The same providers, each measurement timed under its provider's name."""
        def timed(name: str, provider: Provider) -> Provider:
            return _TimedProvider(provider, name, self.measurement_seconds, self.clock)

        return dataclasses.replace(
            providers, prometheus=timed("prometheus", providers.prometheus),
            web=timed("web", providers.web), job=timed("job", providers.job),
            others={kind: timed(kind, p) for kind, p in providers.others.items()})

    # --- readiness ---------------------------------------------------------------------------

    async def check_acting(self) -> tuple[bool, str]:
        """Whether kopf lets this replica act, from its peering object(s); cached briefly."""
        now = self.clock()
        if self._verdict is not None and now - self._verdict[0] < PEERING_TTL:
            return self._verdict[1], self._verdict[2]
        acting, reason = await self._read_peering()
        self._verdict = (now, acting, reason)
        self.acting.set(1 if acting else 0)
        return acting, reason

    async def _read_peering(self) -> tuple[bool, str]:
        peering, client = self._peering, self._client
        if peering is None or peering.standalone:
            return True, "standalone"
        if client is None:
            return False, "the controller has not started yet"
        places: tuple[str | None, ...] = (
            (None,) if peering.namespaces is None else peering.namespaces)
        for namespace in places:
            plural = "clusterkopfpeerings" if namespace is None else "kopfpeerings"
            try:
                body = await client.get("kopf.dev", "v1", plural, namespace, peering.name)
            except NotFoundError:
                if peering.standalone is None:
                    continue  # kopf's auto-detection runs standalone without the object
                return False, f"peering object {peering.name} not found"
            except (KubeError, OSError) as exc:
                return False, f"reading the peering object failed: {exc}"
            acting, reason = acting_verdict(body.get("status") or {}, peering.identity,
                                            peering.priority, self.wall_clock())
            if not acting:
                return False, reason
        return True, "acting"

    async def check_synced(self) -> tuple[bool, str]:
        if self._caches_synced:
            return True, "synced"
        # kopf does not watch while it stands by: a replica that has stood by since it
        # started fills its caches when it takes over, and is ready for its role meanwhile.
        acting, _ = await self.check_acting()
        if not acting:
            return True, "standby: the caches fill when this replica takes over"
        # Nothing to cache means nothing for a handler to be called with: look once.
        client = self._client
        if client is None:
            return False, "the controller has not started yet"
        try:
            for namespace in (None,) if self._served is None else self._served:
                items, _ = await client.list(GROUP, VERSION, "rollouts", namespace)
                if items:
                    return False, "waiting for the initial listing (rollouts exist)"
        except (KubeError, OSError) as exc:
            return False, f"listing failed: {exc}"
        self.mark_synced()
        if not self._caches_synced:
            return False, "waiting for the first lists of replicasets, services, deployments"
        return True, "synced (no Rollout to cache)"

    # --- HTTP --------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def serve(self, address: str | None) -> AsyncIterator[Telemetry]:
        """Serve the endpoints on `address` ("host:port", ":port"; port 0 picks one) while
        the block runs; None serves nothing."""
        if address is None:
            yield self
            return
        try:
            host, port = parse_address(address)
        except ValueError as exc:
            raise MetricsAddressError(str(exc)) from None
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise MetricsAddressError(
                f"cannot serve metrics on {address}: {exc.strerror or exc}") from None
        sockets = getattr(site._server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        log.info("serving metrics and probes", extra={"address": f"{host}:{self.port}"})
        try:
            yield self
        finally:
            await runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._client is not None and (self._peering is None or not self._peering.standalone):
            await self.check_acting()  # keep the gauge fresh between probes
        elif self._client is not None:
            self.acting.set(1)
        return web.Response(body=generate_latest(self.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        excluded = set(request.query.getall("exclude", []))
        checks: list[tuple[str, Callable[[], Awaitable[tuple[bool, str]]]]] = [
            ("caches-synced", self.check_synced), ("acting", self.check_acting)]
        lines, ready = [], True
        for name, check in checks:
            if name in excluded:
                lines.append(f"[+]{name} excluded: ok")
                continue
            ok, reason = await check()
            ready = ready and ok
            lines.append(f"[+]{name} ok" if ok else f"[-]{name} failed: {reason}")
        if "verbose" in request.query or not ready:
            text = "\n".join(lines) + f"\nreadyz check {'passed' if ready else 'failed'}\n"
        else:
            text = "ok\n"
        return web.Response(text=text, status=200 if ready else 503)


def peer_identity() -> str:
    """This replica's name in the peering: the pod's name (kopf's POD_ID convention) or the
    host's, made unique per process so a restarted container is a new peer."""
    return f"{os.environ.get('POD_ID') or socket.gethostname()}/{uuid.uuid4().hex[:8]}"


def parse_address(address: str) -> tuple[str, int]:
    """"host:port" or ":port" (all interfaces); raises ValueError with the reason."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"metrics address {address!r} is not HOST:PORT or :PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


__all__ = ["MetricsAddressError", "Peering", "Telemetry", "acting_verdict", "parse_address",
           "peer_identity"]
