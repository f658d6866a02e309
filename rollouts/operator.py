"""The controller process: kopf wiring around one level-triggered reconcile per Rollout.

This is the only module that imports kopf. It decides nothing: each pass reads the Rollout
(kopf's live body) and the watch-fed caches, asks `rollouts.planner.plan.plan` what to do,
and hands the plan to `rollouts.kube.execute.execute`.

Wiring
------
* Caches: `@kopf.index` handlers keep the ReplicaSets and AnalysisRuns controlled by a
  Rollout (keyed by the owner's (namespace, name)) and every Service (keyed by its own
  (namespace, name)) in memory, trimmed to the fields the planner reads. Nothing is listed
  per pass; a quiet Rollout costs no API request at all.
* Wake-ups: `@kopf.on.event` handlers for Rollouts, owned ReplicaSets, owned AnalysisRuns and
  Services set the owning Rollout's `asyncio.Event` (Services wake every Rollout whose strategy
  names them). The events live in a `Runtime` kept in kopf's memo, not in module state.
  Index and event handlers are coroutines: kopf runs a plain function in its thread pool
  (a hop per event, and `asyncio.Event.set()` from another thread, which is not safe);
  a coroutine runs on the loop, where the events are waited on.
* Reconcile: one `@kopf.daemon` per Rollout loops: wait for its wake event or for the plan's
  `requeue_after` (clamped to [requeue_floor, requeue_ceiling]); observe -> plan -> execute.
  A ConflictError (some write was based on a stale view) waits `requeue_floor` (or the next
  wake) and observes again; it never retries the stale write. Any other failure is logged
  with the Rollout's name and retried with exponential backoff up to `requeue_ceiling`; other
  Rollouts are unaffected (each has its own daemon). An invalid spec is not a failure: the
  planner returns an InvalidSpec status. At most `parallel_passes` passes run at once.
* Logs (rollouts.logs): one `reconciled` line per pass that wrote; nothing per quiet object.
* Peering: kopf's (auto-detected unless `standalone` is forced). Paused operators have their
  daemons stopped by kopf, so only the active replica writes.

What kopf writes into user objects
----------------------------------
* A finalizer on each Rollout (`rollouts.dev/finalizer` by default, kopf's own default name
  replaced): kopf insists on one for every object with a daemon, so that the daemon is
  stopped before the object goes away. It is removed by the controller when the Rollout is
  deleted, once a traffic router's routes are back to all-stable with no managed route and
  no object of the Rollout's left (which means deleting a Rollout while no controller runs
  needs the finalizer removed by hand). Nothing else: there are no create/update/delete
  handlers, so kopf stores no handler progress (its storage is nevertheless pointed at
  `rollouts.dev/`-prefixed annotations rather than at `status`: the status belongs to the
  planner and is replaced wholesale on every write), and it needs no diff-base: the
  diff-base storage is `_NoDiffBase`, which stores nothing and builds no essence (kopf's
  own deep-copies every body of every watched kind on every event, only to diff it for
  change handlers we do not have).
* kopf's own handler-outcome Events are disabled (`settings.posting.enabled = False`); the
  Events users see are the planner's, posted by the executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime as dt
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from rollouts import logs
from rollouts.analysis.providers.egress import EgressPolicy, parse_networks
from rollouts.analysis.runner import ProviderConfig, ProviderSet, reconcile_analysis_run
from rollouts.clock import Clock, SystemClock
from rollouts.errors import ConflictError, KubeError
from rollouts.kube import config as kube_config
from rollouts.kube.analysis import ParsedTemplate, Templates, parse_template
from rollouts.kube.cache import (
    first,
    trim_analysis_run,
    trim_experiment,
    trim_replica_set,
    trim_service,
)
from rollouts.kube.client import KubeClient
from rollouts.kube.config import Connection
from rollouts.kube.events import EventMemory
from rollouts.kube.execute import execute, status_unchanged
from rollouts.kube.experiments import reconcile_experiment
from rollouts.kube.observe import named_services, observe
from rollouts.kube.pods import read_pods
from rollouts.kube.routes import finalize_routes, read_routes
from rollouts.kube.workload import resolve_workload, trim_deployment, workload_name
from rollouts.models.experiment import COMPLETED_EXPERIMENT_PHASES
from rollouts.models.rollout import ValidRollout, parse_rollout
from rollouts.models.wire import (
    COMPLETED_RUN_PHASES,
    GROUP,
    POD_TEMPLATE_HASH_LABEL,
    VERSION,
    controller_owner,
)
from rollouts.notifications.delivery import ConfigSource, DeliveryPolicy, Notifier
from rollouts.planner.plan import plan as make_plan
from rollouts.planner.routing import Router
from rollouts.planner.step_plugins import StepPlugin, load_step_plugins
from rollouts.planner.types import Observed
from rollouts.planner.write_folding import fold
from rollouts.telemetry import Peering, Telemetry, peer_identity
from rollouts.traffic import rollout_router

Key = tuple[str, str]  # (namespace, name)
RouterFactory = Callable[[ValidRollout], Router | None]

log = logging.getLogger("rollouts.operator")

_RUNTIME = "rollouts_runtime"
# How long to trust that our own status write will come back through the watch before
# planning on the (then stale) body anyway.
_ECHO_WAIT = 5.0


@dataclass(frozen=True)
class OperatorConfig:
    clock: Clock = field(default_factory=SystemClock)
    # Namespaces to serve; empty with clusterwide=False means the kubeconfig's namespace.
    namespaces: tuple[str, ...] = ()
    clusterwide: bool = False
    # None: kopf's auto-detection (standalone when the peering CRD is absent).
    standalone: bool | None = None
    peering_name: str = "rollouts"
    # kopf peering priority: of two live replicas the higher acts (equal ones both pause).
    peering_priority: int | None = None
    # Serve /metrics, /healthz and /readyz here ("host:port", ":port"); None: not at all.
    metrics_address: str | None = None
    # Bounds on the wait before the next pass: the floor is also the delay after a conflict
    # and the first retry delay after an error; the ceiling caps requeues and backoff.
    requeue_floor: float = 0.5
    requeue_ceiling: float = 300.0
    finalizer: str = "rollouts.dev/finalizer"
    # Seconds a stopping reconcile may take to finish its pass before it is cancelled.
    cancellation_timeout: float = 5.0
    # Rollout passes running at once; the others wait their turn, and read the Rollout when
    # they start (a Rollout woken twice while waiting makes one pass). Bounds the memory of a
    # burst (a thousand Rollouts changed at once) to this many passes' working sets.
    parallel_passes: int = 32
    # Prometheus for metrics that name no address (e.g. the sandbox's own Prometheus).
    prometheus_address: str | None = None
    # Networks metric providers may reach although link-local / cloud metadata
    # (`--allow-metric-address CIDR`, repeatable).
    allow_metric_addresses: tuple[str, ...] = ()
    # The traffic router of a Rollout (None: no trafficRouting, the pods are the split).
    # Route objects are read on each pass of a Rollout that has a router.
    router_factory: RouterFactory | None = rollout_router
    # Where notification services are configured (None: notifications are off).
    notifications: ConfigSource | None = None
    notification_policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    # Canary step plugins by name (default: the entry-point group rollouts.step_plugins).
    step_plugins: Mapping[str, StepPlugin] = field(default_factory=load_step_plugins)


@dataclass
class Runtime:
    """Per-operator mutable state, kept in kopf's memo (one per running operator)."""

    client: KubeClient
    providers: ProviderSet
    # Rollout passes running at once (OperatorConfig.parallel_passes).
    passes: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(OperatorConfig.parallel_passes))
    # One per running reconcile daemon; created by the daemon, dropped when it exits.
    wakeups: dict[Key, asyncio.Event] = field(default_factory=dict)
    # (namespace, service) -> Rollouts whose strategy names it, and the reverse.
    service_users: dict[Key, set[Key]] = field(default_factory=dict)
    services_of: dict[Key, tuple[str, ...]] = field(default_factory=dict)
    notifier: Notifier | None = None
    # The Events written lately about each Rollout, to count repeats on them.
    events: EventMemory = field(default_factory=EventMemory)
    # Whether the first reconcile daemon has started (said once: a process-level line).
    serving: bool = False

    def wakeup(self, key: Key) -> asyncio.Event:
        event = self.wakeups.get(key)
        if event is None:
            event = self.wakeups[key] = asyncio.Event()
        return event

    def wake(self, key: Key) -> None:
        # Nothing to do without a daemon: a starting daemon makes its first pass anyway, and
        # creating events here would leak one per deleted Rollout.
        event = self.wakeups.get(key)
        if event is not None:
            event.set()

    def set_services(self, key: Key, services: tuple[str, ...]) -> None:
        if self.services_of.get(key, ()) == services:
            return
        namespace = key[0]
        for service in self.services_of.pop(key, ()):
            users = self.service_users.get((namespace, service))
            if users is not None:
                users.discard(key)
                if not users:
                    del self.service_users[(namespace, service)]
        if services:
            self.services_of[key] = services
        for service in services:
            self.service_users.setdefault((namespace, service), set()).add(key)

    def wake_namespace(self, namespace: str | None) -> None:
        """Wake every Rollout of a namespace (all of them for None): a template changed."""
        for key, event in self.wakeups.items():
            if namespace is None or key[0] == namespace:
                event.set()

    def forget(self, key: Key) -> None:
        self.wakeups.pop(key, None)
        self.set_services(key, ())
        self.events.forget(key)
        if self.notifier is not None:  # notifications
            self.notifier.forget(key)


class _NoDiffBase(kopf.DiffBaseStorage):
    """No `last-handled-configuration`: without create/update/delete handlers kopf reads the
    diff-base only to find what changed for them. An empty essence on both sides is "no
    change", and costs no copy of the body."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return cast(kopf.BodyEssence, {})

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


def _runtime(memo: Any) -> Runtime:
    runtime = memo.get(_RUNTIME) if isinstance(memo, Mapping) else getattr(memo, _RUNTIME, None)
    if not isinstance(runtime, Runtime):
        raise RuntimeError("the operator's startup handler has not run")
    return runtime


def _owner_key(body: Mapping[str, Any], namespace: str | None) -> Key | None:
    owner = controller_owner(body)
    return None if owner is None else (namespace or "", owner[0])


def _is_owned(body: Any, **_: Any) -> bool:
    return controller_owner(body) is not None


def _connection_info(connection: Connection) -> kopf.ConnectionInfo:
    return kopf.ConnectionInfo(
        server=connection.host,
        ca_path=connection.ca_path,
        insecure=not connection.verify,
        username=connection.username,
        password=connection.password,
        scheme="Bearer" if connection.bearer() else None,
        token=connection.bearer(),
        certificate_path=connection.cert_path,
        private_key_path=connection.key_path,
        default_namespace=connection.default_namespace,
    )


class _Reconciler:
    """One Rollout's observe -> plan -> execute passes (state between passes: none but
    the resourceVersion of our last status write, to wait for its echo)."""

    def __init__(self, config: OperatorConfig, runtime: Runtime, key: Key) -> None:
        self.config = config
        self.runtime = runtime
        self.key = key
        self.name = f"{key[0]}/{key[1]}"
        self.written_over: str | None = None  # the rv our last status write replaced
        self.minor_since: dt.datetime | None = None  # a minor status change held since
        self.experiments: Any = {}  # experiments: the rollout_experiments index

    async def reconcile(
        self,
        body: Mapping[str, Any],
        replica_sets: Any,
        services: Any,
        analysis_runs: Any,
        templates: tuple[Any, Any],
        deployments: Any = None,
    ) -> float | None:
        """One pass; the seconds until the planner wants to look again (None: on change)."""
        snapshot: dict[str, Any] = copy.deepcopy(dict(body))
        metadata = snapshot.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            return None
        rv = str(metadata.get("resourceVersion") or "")
        if self.written_over is not None and rv == self.written_over:
            # Our own status write has not come back yet: planning now would plan from the
            # status we just replaced. The Rollout's watch event wakes us.
            self.written_over = None
            return _ECHO_WAIT
        self.written_over = None

        rollout = parse_rollout(snapshot)  # validated once; every step below reads this
        now = self.config.clock.now()
        observed = Observed()
        deployment = None  # workloadRef: the template comes from the Deployment
        watched: tuple[str, ...] = ()
        if isinstance(rollout, ValidRollout) and (wanted := workload_name(rollout)):
            deployment = first((deployments or {}).get((self.key[0], wanted)))
            rollout, watched = resolve_workload(rollout, deployment), (_deployment_key(wanted),)
        if isinstance(rollout, ValidRollout):
            observed = await self._observe(rollout, replica_sets, services, analysis_runs,
                                           templates, deployment)
        else:  # a missing Deployment still wakes the Rollout when it comes
            self.runtime.set_services(self.key, watched)
        plan = make_plan(rollout, observed, now)
        notifier = self.runtime.notifier  # notifications: records go out with the status
        if notifier is not None:
            plan = dataclasses.replace(plan, status=notifier.annotate(
                self.key, rollout.status, plan.status, rollout.metadata.annotations, now))
        folded = fold(rollout.status, plan.status, has_events=bool(plan.events),
                      pending_since=self.minor_since, requeue_after=plan.requeue_after, now=now)
        self.minor_since = folded.pending_since
        if not folded.write:  # only counts and the like changed: the next write carries them
            plan = dataclasses.replace(plan, status=rollout.status,
                                       requeue_after=folded.requeue_after)
        status_changes = not status_unchanged(snapshot.get("status"), plan.status)
        wrote = await execute(self.runtime.client, rollout.metadata, snapshot.get("status"),
                              plan, now, self.runtime.events)
        if status_changes:
            self.written_over = rv
        if notifier is not None:  # notifications: delivered only once written
            notifier.submit(self.key, plan.status)
        if wrote:
            log.info(
                "reconciled",
                extra={
                    "rollout": self.name,
                    "phase": plan.status.phase,
                    "step": plan.status.step,
                    "actions": [type(a).__name__ for a in plan.actions],
                    "events": [e.reason for e in plan.events],
                    "requeue_after": plan.requeue_after,
                },
            )
        return plan.requeue_after

    async def finalize(self, body: Mapping[str, Any]) -> None:
        """A deleted Rollout's routes back to all-stable, its managed routes and owned route
        objects gone; logged, never raised (the Rollout must still go away)."""
        rollout = parse_rollout(copy.deepcopy(dict(body)))
        factory = self.config.router_factory
        router = factory(rollout) if factory and isinstance(rollout, ValidRollout) else None
        if router is None:
            return
        try:
            await finalize_routes(self.runtime.client, router)
        except Exception as exc:
            log.error("routes not finalized", exc_info=not isinstance(exc, KubeError),
                      extra={"rollout": self.name, "error": str(exc)})

    async def _observe(self, rollout: ValidRollout, replica_sets: Any, services: Any,
                       analysis_runs: Any, templates: tuple[Any, Any],
                       deployment: Mapping[str, Any] | None = None) -> Observed:
        namespace = self.key[0]
        wanted = named_services(rollout.spec)
        # The workloadRef Deployment wakes this Rollout too (a key no Service name can take).
        workload = workload_name(rollout)
        self.runtime.set_services(self.key, wanted + ((_deployment_key(workload),)
                                                      if workload else ()))
        namespaced, cluster = templates
        factory = self.config.router_factory
        router = factory(rollout) if factory is not None else None
        known = Templates.from_parsed(
            [*namespaced.get(namespace, ()), *cluster.get("", ())])
        return observe(
            rollout,
            replica_sets=list(replica_sets.get(self.key, ())),
            services={name: first(services.get((namespace, name))) for name in wanted},
            analysis_runs=list(analysis_runs.get(self.key, ())),
            templates=known,
            router=router,
            route_bodies=await read_routes(self.runtime.client, router) if router else {},
            experiments=list(self.experiments.get(self.key, ())),  # experiments
            workload=deployment,
            step_plugins=self.config.step_plugins,
            pods=await read_pods(self.runtime.client, rollout,  # pods: only when needed
                                 replica_sets.get(self.key, ()), self.config.clock.now()),
        )


async def _sleep(wake: asyncio.Event, stopped: kopf.DaemonStopped, delay: float | None) -> None:
    """Until the Rollout is woken, the daemon is stopped, or `delay` seconds pass."""
    if wake.is_set() or stopped:
        return
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def build_registry(
    config: OperatorConfig, *, connection: Connection | None = None,
    telemetry: Telemetry | None = None,
) -> kopf.OperatorRegistry:
    """A fresh registry with every handler of the controller.

    `connection`: where the API server is (also used for kopf's login); None loads it at
    startup from $KUBECONFIG / ~/.kube/config, or the pod's service account.
    """
    registry = kopf.OperatorRegistry()
    telemetry = telemetry or Telemetry(process_metrics=False)

    def _connection() -> Connection:
        return connection if connection is not None else kube_config.load()

    @kopf.on.login(id="login", registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return _connection_info(_connection())

    @kopf.on.startup(id="startup", registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
        settings.persistence.finalizer = config.finalizer
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix="rollouts.dev"
        )
        settings.persistence.diffbase_storage = _NoDiffBase()
        settings.posting.enabled = False
        # The reconcile loop exits between passes as soon as it is stopped; give it that
        # moment so that kopf releases a deleted Rollout at once instead of polling it.
        settings.background.instant_exit_timeout = 0.5
        # Only the ReplicaSets this controller makes carry the hash label: watch just those.
        settings.watching.label_selectors["apps", "replicasets"] = POD_TEMPLATE_HASH_LABEL
        settings.peering.name = config.peering_name
        if not config.clusterwide:
            # Named namespaces: discover the resources once at start instead of watching
            # Namespaces and CRDs cluster-wide, so a Role-per-namespace install needs no
            # cluster-wide read of either (least privilege; see charts/rollouts).
            settings.scanning.disabled = True
        if config.standalone is not None:
            settings.peering.standalone = config.standalone
        client = KubeClient(_connection(), on_response=telemetry.observe_request)  # telemetry
        providers = telemetry.instrument(ProviderSet.from_config(  # telemetry
            ProviderConfig(
                prometheus_address=config.prometheus_address,
                egress=EgressPolicy(parse_networks(config.allow_metric_addresses)),
            ), client))
        telemetry.bind(client)  # telemetry
        memo[_RUNTIME] = runtime = Runtime(client=client, providers=providers,
                                           passes=asyncio.Semaphore(config.parallel_passes))
        if config.notifications is not None:  # notifications
            runtime.notifier = Notifier(
                functools.partial(config.notifications.read, client), runtime.wake,
                policy=config.notification_policy, on_delivery=telemetry.observe_notification)

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(memo: Any, **_: Any) -> None:
        with contextlib.suppress(RuntimeError):
            runtime = _runtime(memo)
            await runtime.providers.aclose()
            if runtime.notifier is not None:  # notifications
                await runtime.notifier.aclose()
            await runtime.client.close()

    # --- caches --------------------------------------------------------------------------

    @kopf.index("apps", "v1", "replicasets",
                when=_is_owned, id="rollout_replicasets", registry=registry)
    async def rollout_replicasets(
        body: kopf.Body, namespace: str | None, **_: Any
    ) -> dict[Key, dict[str, Any]] | None:
        key = _owner_key(body, namespace)
        return None if key is None else {key: trim_replica_set(body)}

    @kopf.index("", "v1", "services", id="rollout_services", registry=registry)
    async def rollout_services(
        body: kopf.Body, namespace: str | None, name: str | None, **_: Any
    ) -> dict[Key, dict[str, Any]]:
        return {(namespace or "", name or ""): trim_service(body)}

    @kopf.index("apps", "v1", "deployments", id="rollout_deployments", registry=registry)
    async def rollout_deployments(body: kopf.Body, namespace: str | None, name: str | None,
                                  **_: Any) -> dict[Key, dict[str, Any]]:
        return {(namespace or "", name or ""): trim_deployment(body)}  # spec.workloadRef

    @kopf.index(GROUP, VERSION, "analysisruns",
                when=_is_owned, id="rollout_analysisruns", registry=registry)
    async def rollout_analysisruns(
        body: kopf.Body, namespace: str | None, **_: Any
    ) -> dict[Key, dict[str, Any]] | None:
        key = _owner_key(body, namespace)
        return None if key is None else {key: trim_analysis_run(body)}

    @kopf.index(GROUP, VERSION, "analysistemplates", id="analysis_templates",
                registry=registry)
    async def analysis_templates(body: kopf.Body, namespace: str | None,
                           **_: Any) -> dict[str, ParsedTemplate]:
        # Validated here, once per change of the template, not on every pass.
        return {namespace or "": parse_template(body, cluster=False)}

    @kopf.index(GROUP, VERSION, "clusteranalysistemplates", id="cluster_analysis_templates",
                registry=registry)
    async def cluster_analysis_templates(body: kopf.Body, **_: Any) -> dict[str, ParsedTemplate]:
        return {"": parse_template(body, cluster=True)}

    # --- wake-ups ------------------------------------------------------------------------

    @kopf.on.event(GROUP, VERSION, "analysistemplates", id="template_changed",
                   registry=registry)
    async def template_changed(namespace: str | None, memo: Any, **_: Any) -> None:
        _runtime(memo).wake_namespace(namespace or "")

    @kopf.on.event(GROUP, VERSION, "clusteranalysistemplates", id="cluster_template_changed",
                   registry=registry)
    async def cluster_template_changed(memo: Any, **_: Any) -> None:
        _runtime(memo).wake_namespace(None)

    @kopf.on.event(GROUP, VERSION, "rollouts", id="rollout_changed", registry=registry)
    async def rollout_changed(body: kopf.Body, namespace: str | None, name: str | None, memo: Any,
                        type: str | None, **_: Any) -> None:
        telemetry.observe_rollout(body, type)  # telemetry
        _runtime(memo).wake((namespace or "", name or ""))

    @kopf.on.event("apps", "v1", "replicasets",
                   when=_is_owned, id="replica_set_changed", registry=registry)
    async def replica_set_changed(body: kopf.Body, namespace: str | None, memo: Any,
                            **_: Any) -> None:
        key = _owner_key(body, namespace)
        if key is not None:
            _runtime(memo).wake(key)

    @kopf.on.event(GROUP, VERSION, "analysisruns",
                   when=_is_owned, id="analysis_run_changed", registry=registry)
    async def analysis_run_changed(body: kopf.Body, namespace: str | None, name: str | None,
                             memo: Any, type: str | None, **_: Any) -> None:
        telemetry.observe_analysis_run(body, type)  # telemetry
        runtime = _runtime(memo)
        key = _owner_key(body, namespace)
        if key is not None:
            runtime.wake(key)
        runtime.wake(_run_key(namespace, name))

    @kopf.on.event("", "v1", "services", id="service_changed", registry=registry)
    async def service_changed(namespace: str | None, name: str | None, memo: Any,
                        **_: Any) -> None:
        telemetry.mark_synced()  # telemetry
        runtime = _runtime(memo)
        for key in list(runtime.service_users.get((namespace or "", name or ""), ())):
            runtime.wake(key)

    @kopf.on.event("apps", "v1", "deployments", id="deployment_changed", registry=registry)
    async def deployment_changed(namespace: str | None, name: str | None, memo: Any,
                                 **_: Any) -> None:
        runtime = _runtime(memo)  # the Rollouts whose workloadRef names it
        for key in list(runtime.service_users.get(
                (namespace or "", _deployment_key(name or "")), ())):
            runtime.wake(key)

    # --- the reconcile loop --------------------------------------------------------------

    @kopf.daemon(
        GROUP, VERSION, "rollouts",
        id="reconcile", registry=registry,
        # Signalled first (the loop wakes on `stopped` and exits between passes), cancelled
        # only if a pass is still running after the backoff.
        cancellation_backoff=config.cancellation_timeout,
        cancellation_timeout=1.0,
    )
    async def reconcile(
        body: kopf.Body,
        namespace: str | None,
        name: str,
        memo: Any,
        stopped: kopf.DaemonStopped,
        **kwargs: Any,
    ) -> None:
        # The caches arrive as kwargs named after the index handlers.
        replica_sets = kwargs["rollout_replicasets"]
        services = kwargs["rollout_services"]
        analysis_runs = kwargs["rollout_analysisruns"]
        templates = (kwargs["analysis_templates"], kwargs["cluster_analysis_templates"])
        deployments = kwargs["rollout_deployments"]
        runtime = _runtime(memo)
        key: Key = (namespace or "", name)
        reconciler = _Reconciler(config, runtime, key)
        reconciler.experiments = kwargs["rollout_experiments"]  # experiments
        if not runtime.serving:
            runtime.serving = True
            log.info("reconciling Rollouts")

        async def one_pass() -> float | None:
            async with runtime.passes:
                return await reconciler.reconcile(
                    body, replica_sets, services, analysis_runs, templates, deployments)

        await _loop(config, runtime, key, stopped, telemetry.timed(one_pass),  # telemetry
                    {"rollout": reconciler.name})
        if body.get("metadata", {}).get("deletionTimestamp"):
            await reconciler.finalize(body)  # before kopf removes the finalizer

    @kopf.daemon(
        GROUP, VERSION, "analysisruns",
        id="analysis", registry=registry,
        cancellation_backoff=config.cancellation_timeout,
        cancellation_timeout=1.0,
    )
    async def analysis(
        body: kopf.Body,
        namespace: str | None,
        name: str,
        memo: Any,
        stopped: kopf.DaemonStopped,
        **_: Any,
    ) -> None:
        """Measure one AnalysisRun on its schedule until it completes.

        The schedule lives in the run's status (each measurement's slot), so a restarted
        controller neither repeats nor skips a measurement.
        """
        runtime = _runtime(memo)
        # Versions of the run that this daemon's own status writes replaced: a wake-up (e.g.
        # by kopf's finalizer event) may come before the watch brings our write back, and a
        # pass on such a body would take the measurements it just wrote a second time.
        superseded: set[str] = set()

        async def one_pass() -> float | None:
            snapshot = copy.deepcopy(dict(body))
            if (snapshot.get("status") or {}).get("phase") in COMPLETED_RUN_PHASES:
                raise _Done  # finished runs need no daemon; a restart looks once more
            if str((snapshot.get("metadata") or {}).get("resourceVersion")) in superseded:
                return config.requeue_floor  # our write's watch event is on its way
            superseded.clear()
            requeue = await reconcile_analysis_run(
                runtime.client, snapshot, runtime.providers, config.clock.now(),
                on_write=superseded.add)
            if requeue == 0:  # a conflict: wait for the watch to bring the newer run
                raise ConflictError(409, "Conflict", "AnalysisRun status changed")
            return requeue

        await _loop(config, runtime, _run_key(namespace, name), stopped, one_pass,
                    {"analysisrun": f"{namespace}/{name}"})

    _register_experiments(registry, config)  # experiments
    return registry


def _deployment_key(name: str) -> str:
    # Kept with the Service names a Rollout watches; "/" is in no Service name.
    return f"deployment/{name}"


# --- experiments: one daemon per Experiment, fed by indexes of what it owns ------------------


def _experiment_key(namespace: str | None, name: str | None) -> Key:
    return (namespace or "", f"experiment/{name or ''}")


def _is_experiment_owned(body: Any, **_: Any) -> bool:
    return controller_owner(body, "Experiment") is not None


def _register_experiments(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    def owner_key(body: Mapping[str, Any], namespace: str | None) -> Key | None:
        owner = controller_owner(body, "Experiment")
        return None if owner is None else _experiment_key(namespace, owner[0])

    @kopf.index("apps", "v1", "replicasets", when=_is_experiment_owned,
                id="experiment_replicasets", registry=registry)
    async def experiment_replicasets(body: kopf.Body, namespace: str | None,
                                     **_: Any) -> dict[Key, dict[str, Any]] | None:
        key = owner_key(body, namespace)
        return None if key is None else {key: trim_replica_set(body)}

    @kopf.index(GROUP, VERSION, "analysisruns", when=_is_experiment_owned,
                id="experiment_analysisruns", registry=registry)
    async def experiment_analysisruns(body: kopf.Body, namespace: str | None,
                                      **_: Any) -> dict[Key, dict[str, Any]] | None:
        key = owner_key(body, namespace)
        return None if key is None else {key: trim_analysis_run(body)}

    @kopf.index(GROUP, VERSION, "experiments", when=_is_owned,
                id="rollout_experiments", registry=registry)
    async def rollout_experiments(body: kopf.Body, namespace: str | None,
                                  **_: Any) -> dict[Key, dict[str, Any]] | None:
        key = _owner_key(body, namespace)
        return None if key is None else {key: trim_experiment(body)}

    @kopf.on.event("apps", "v1", "replicasets", when=_is_experiment_owned,
                   id="experiment_replica_set_changed", registry=registry)
    @kopf.on.event(GROUP, VERSION, "analysisruns", when=_is_experiment_owned,
                   id="experiment_analysis_run_changed", registry=registry)
    async def experiment_child_changed(body: kopf.Body, namespace: str | None, memo: Any,
                                       **_: Any) -> None:
        key = owner_key(body, namespace)
        if key is not None:
            _runtime(memo).wake(key)

    @kopf.on.event(GROUP, VERSION, "experiments", id="experiment_changed", registry=registry)
    async def experiment_changed(body: kopf.Body, namespace: str | None, name: str | None,
                                 memo: Any, **_: Any) -> None:
        runtime = _runtime(memo)
        runtime.wake(_experiment_key(namespace, name))
        rollout = _owner_key(body, namespace)
        if rollout is not None:
            runtime.wake(rollout)

    @kopf.daemon(GROUP, VERSION, "experiments", id="experiment", registry=registry,
                 cancellation_backoff=config.cancellation_timeout, cancellation_timeout=1.0)
    async def experiment(body: kopf.Body, namespace: str | None, name: str, memo: Any,
                         stopped: kopf.DaemonStopped, **kwargs: Any) -> None:
        runtime = _runtime(memo)
        key = _experiment_key(namespace, name)

        async def one_pass() -> float | None:
            snapshot = copy.deepcopy(dict(body))
            if (snapshot.get("metadata") or {}).get("deletionTimestamp"):
                raise _Done
            templates = Templates.from_parsed([
                *kwargs["analysis_templates"].get(namespace or "", ()),
                *kwargs["cluster_analysis_templates"].get("", ())])
            plan = await reconcile_experiment(
                runtime.client, snapshot,
                replica_sets=list(kwargs["experiment_replicasets"].get(key, ())),
                analysis_runs=list(kwargs["experiment_analysisruns"].get(key, ())),
                templates=templates, now=config.clock.now())
            if (plan.status.phase in COMPLETED_EXPERIMENT_PHASES and not plan.actions
                    and plan.requeue_after is None):
                raise _Done  # ended and scaled down (scaleDownDelaySeconds over)
            return plan.requeue_after

        await _loop(config, runtime, key, stopped, one_pass,
                    {"experiment": f"{namespace}/{name}"})


def _run_key(namespace: str | None, name: str | None) -> Key:
    # A separate key space from Rollouts (an AnalysisRun may share a Rollout's name).
    return (namespace or "", f"analysisrun/{name or ''}")


def _clamp(config: OperatorConfig, delay: float | None) -> float | None:
    if delay is None:
        return None
    return min(config.requeue_ceiling, max(config.requeue_floor, delay))


class _Done(Exception):
    """Raised by a pass whose object needs no more passes: the loop ends."""


async def _loop(config: OperatorConfig, runtime: Runtime, key: Key,
                stopped: kopf.DaemonStopped, one_pass: Callable[[], Awaitable[float | None]],
                names: Mapping[str, str]) -> None:
    """Run `one_pass` whenever the object is woken or its requeue comes due, until stopped.

    A conflict (some write was based on a stale view) is never retried as is: the next pass
    observes again, soon after the watch delivers the change (its event wakes the loop),
    backing off while conflicts repeat. Any other failure is logged with the object's name
    and retried with exponential backoff; other objects are unaffected.
    """
    wake = runtime.wakeup(key)
    wake.set()  # the first pass runs at once
    delay: float | None = None
    failures = conflicts = 0
    try:
        while not stopped:
            await _sleep(wake, stopped, delay)
            if stopped:
                break
            wake.clear()
            try:
                delay = _clamp(config, await one_pass())
                failures = conflicts = 0
            except _Done:
                return
            except ConflictError as exc:
                conflicts += 1
                log.debug("conflict; observing again", extra={**names, "error": str(exc)})
                delay = min(config.requeue_ceiling,
                            config.requeue_floor * 2 ** min(conflicts - 1, 6))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = min(config.requeue_ceiling,
                            config.requeue_floor * 2 ** min(failures, 20))
                log.error("pass failed", exc_info=not isinstance(exc, KubeError),
                          extra={**names, "error": str(exc), "error_type": type(exc).__name__,
                                 "failures": failures, "retry_in": delay})
    finally:
        runtime.forget(key)


async def operator(
    config: OperatorConfig,
    *,
    connection: Connection,
    namespaces: tuple[str, ...] | None = None,
    clusterwide: bool | None = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """Run the controller on the current event loop until `stop_flag` is set."""
    serve = tuple(namespaces if namespaces is not None else config.namespaces)
    wide = config.clusterwide if clusterwide is None else clusterwide
    if not wide and not serve:
        serve = (connection.default_namespace or "default",)
    # --- telemetry: the peering this replica takes part in, and the metrics endpoint
    telemetry, identity = Telemetry(), peer_identity()
    telemetry.set_scope(
        Peering(config.peering_name, identity, config.peering_priority or 0,
                None if wide else serve, config.standalone),
        None if wide else serve)
    registry = build_registry(dataclasses.replace(config, clusterwide=wide),
                              connection=connection, telemetry=telemetry)
    async with telemetry.serve(config.metrics_address):
        await kopf.operator(
            registry=registry,
            standalone=config.standalone,
            # Not peering_name=: kopf makes peering mandatory when a name is passed; the name
            # is set in the startup handler so that auto-detection stays on.
            identity=cast(Any, identity),
            priority=config.peering_priority,
            clusterwide=wide,
            namespaces=() if wide else serve,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            memo=kopf.Memo(),
        )


def run_operator(
    config: OperatorConfig,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespaces: tuple[str, ...] | None = None,
    clusterwide: bool | None = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    configure_logging: bool = False,
    verbose: bool = False,
    log_format: str = "json",
) -> None:
    """Blocking entry point (the CLI's `rollouts controller`); run it in a thread with a
    `threading.Event` stop flag to embed it. With `configure_logging`, logs go to stderr in
    `log_format` (see `rollouts.logs`: one JSON object a line, or "text")."""
    connection = kube_config.load(kubeconfig, context)
    if configure_logging:
        logs.configure(log_format, verbose=verbose,
                       secrets=(connection.token or "", connection.password or ""))
    asyncio.run(
        operator(
            config,
            connection=connection,
            namespaces=namespaces,
            clusterwide=clusterwide,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    )
