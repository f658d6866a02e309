"""The controller process: kopf wiring around one level-triggered reconcile per Rollout.

This is the only module that imports kopf, and it holds only the kopf-facing part: the
handlers and settings. It decides nothing: each pass (`rollouts.controller.reconciler`) reads
the Rollout (kopf's live body) and the watch-fed caches, asks `rollouts.planner.plan.plan`
what to do, and hands the plan to `rollouts.kube.execute.execute`; the daemons' loop is
`rollouts.controller.loop`, the shared state `rollouts.controller.runtime`.

Wiring
------
* Caches: ReplicaSets (by the Rollout, or Experiment, controlling them), Services and
  Deployments (by their own (namespace, name)) are kept by our own list-and-watch,
  `rollouts.controller.caches` over `rollouts.kube.informer` (one stream per kind, cluster-wide
  or per served namespace; each event trimmed as it is decoded, to the fields the planner
  reads), started by the startup handler on a client of its own and stopped by the cleanup
  handler. kopf would hand each of those objects to a per-object worker of its own (body,
  queue, logger, toggle: ~4,000 of them at 1,000 Rollouts); kopf watches only our own kinds.
  The AnalysisRuns and Experiments controlled by a Rollout and the analysis templates stay
  `@kopf.index` handlers. Nothing is listed per pass; a quiet Rollout costs no API request.
  A daemon's first pass waits until the watched caches hold their first lists (kopf waits
  for its own indexes likewise), so no pass sees a half-filled cache.
* Wake-ups: a change of a cached ReplicaSet wakes its Rollout (or Experiment), of a Service
  (or Deployment) every Rollout whose strategy (workloadRef) names it; `@kopf.on.event`
  handlers do the same for Rollouts, owned AnalysisRuns, Experiments and templates. Each
  sets the owner's `asyncio.Event`, kept in a `Runtime` in kopf's memo, not in module state.
  Event handlers are coroutines: kopf runs a plain function in its thread pool
  (a hop per event, and `asyncio.Event.set()` from another thread, which is not safe);
  a coroutine runs on the loop, where the events are waited on.
* Reconcile: one `@kopf.daemon` per Rollout loops: wait for its wake event or for the plan's
  `requeue_after` (clamped to [requeue_floor, requeue_ceiling]); observe -> plan -> execute.
  A ConflictError (some write was based on a stale view) waits `requeue_floor` (or the next
  wake) and observes again; it never retries the stale write. Any other failure is logged
  with the Rollout's name and retried with exponential backoff up to `requeue_ceiling`; other
  Rollouts are unaffected (each has its own daemon). An invalid spec is not a failure: the
  planner returns an InvalidSpec status. At most `parallel_passes` passes run at once.
* Kept bodies: kopf keeps the last body of each Rollout, AnalysisRun and Experiment for its
  daemon (the raw dict of the last event). The event handlers take `metadata.managedFields`
  out of that dict (about half of a Rollout's decoded body; nothing reads it of these kinds):
  ~25 MiB of peak RSS at 1,000 Rollouts (docs/benchmarks.md, "Memory at 1,000 Rollouts,
  round 4"; tests/e2e/test_kept_bodies.py fails if kopf stops sharing that dict).
* Logs (rollouts.logs): one `reconciled` line per pass that wrote; nothing per quiet object.
* Peering: kopf's (auto-detected unless `standalone` is forced). Paused operators have their
  daemons stopped by kopf, so only the active replica writes; the watches of a standby go on
  (they only read), so that it takes over with its caches filled.

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
import dataclasses
import functools
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import aiohttp

from rollouts import logs
from rollouts.analysis.providers.egress import EgressPolicy, parse_networks
from rollouts.analysis.runner import ProviderConfig, ProviderSet, reconcile_analysis_run
from rollouts.controller.allocator import release_freed_memory, tune_collector
from rollouts.controller.caches import WatchedCaches
from rollouts.controller.config import OperatorConfig
from rollouts.controller.lean_imports import import_without
from rollouts.controller.loop import Done, run_loop
from rollouts.controller.reconciler import Reconciler
from rollouts.controller.runtime import (
    Key,
    Runtime,
    experiment_key,
    experiment_owner_key,
    is_experiment_owned,
    is_owned,
    owner_key,
    run_key,
)
from rollouts.controller.tls_buffers import shrink_tls_read_buffers
from rollouts.errors import ConflictError
from rollouts.kube import config as kube_config
from rollouts.kube.analysis import ParsedTemplate, Templates, parse_template
from rollouts.kube.cache import (
    plain_copy,
    slim_kept_body,
    trim_analysis_run,
    trim_experiment,
)
from rollouts.kube.client import KubeClient
from rollouts.kube.config import Connection
from rollouts.kube.experiments import reconcile_experiment
from rollouts.kube.sessions import bounded_requests
from rollouts.models.experiment import COMPLETED_EXPERIMENT_PHASES
from rollouts.models.wire import COMPLETED_RUN_PHASES, GROUP, VERSION
from rollouts.notifications.delivery import Notifier
from rollouts.telemetry import Peering, Telemetry, peer_identity

__all__ = ["OperatorConfig", "build_registry", "operator", "run_operator"]

if TYPE_CHECKING:
    import kopf
else:  # without the optional libraries they would import for nothing (lean_imports)
    kopf = import_without("kopf")
    import_without("httpcore")


log = logging.getLogger("rollouts.operator")

_RUNTIME = "rollouts_runtime"
_CACHES = "rollouts_caches"
# kopf's own requests in flight at once, watches aside (it patches finalizers on first sight).
_KOPF_REQUESTS = 8
IDLE_WORKER_SECONDS = 1.0


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


def _caches(memo: Any) -> WatchedCaches:
    caches = memo.get(_CACHES) if isinstance(memo, Mapping) else getattr(memo, _CACHES, None)
    if not isinstance(caches, WatchedCaches):
        raise RuntimeError("the operator's startup handler has not run")
    return caches


async def _caches_synced(caches: WatchedCaches, stopped: kopf.DaemonStopped) -> bool:
    """Until the watched caches hold their first lists (False: stopped before that)."""
    if caches.synced:
        return True
    waiters = [asyncio.ensure_future(caches.wait_synced()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return caches.synced


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


def _kopf_session(info: kopf.ConnectionInfo) -> kopf.AiohttpSession:
    """kopf's session as kopf makes it (its TLS context and auth header), plus a bound on
    its requests in flight (`bounded_requests`: a burst of kopf's writes opened a TLS
    connection each). Made on the loop, as aiohttp wants; kopf closes it on re-login."""
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        aiohttp_session=aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
            headers=info.as_http_headers(),
            middlewares=(bounded_requests(_KOPF_REQUESTS),),
        ),
    )


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
    async def login(**_: Any) -> kopf.AiohttpSession:
        return _kopf_session(_connection_info(_connection()))

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
        # A Rollout's event worker (its task, queue and waiters) exits 1 s after its last
        # event instead of kopf's 5: fewer alive at once in a canary of 1,000 Rollouts.
        settings.queueing.idle_timeout = IDLE_WORKER_SECONDS
        settings.peering.name = config.peering_name
        # A replica killed without withdrawing its record stalls the standby until the
        # record's lifetime is up (kopf's default 60 s); keep-alives come every 1-5 s.
        settings.peering.lifetime = 10
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
        # ReplicaSets, Services, Deployments: our own watches (rollouts.controller.caches),
        # on a client of their own (each stream holds a connection while it is open).
        scope = None if config.clusterwide else (
            config.namespaces or (_connection().default_namespace or "default",))
        streams = 3 * (1 if scope is None else len(scope))  # a list at a time per stream
        telemetry.expect_watches()  # telemetry: synced once they have listed too
        memo[_CACHES] = caches = WatchedCaches.build(
            KubeClient(_connection(), max_in_flight=streams,
                       on_response=telemetry.observe_request),  # telemetry
            runtime, scope, on_synced=telemetry.mark_watches_synced)  # telemetry
        caches.start()
        if config.notifications is not None:  # notifications
            runtime.notifier = Notifier(
                functools.partial(config.notifications.read, client), runtime.wake,
                policy=config.notification_policy, on_delivery=telemetry.observe_notification)

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(memo: Any, **_: Any) -> None:
        with contextlib.suppress(RuntimeError):
            caches = _caches(memo)
            await caches.stop()
            await caches.replica_sets.client.close()
        with contextlib.suppress(RuntimeError):
            runtime = _runtime(memo)
            await runtime.providers.aclose()
            if runtime.notifier is not None:  # notifications
                await runtime.notifier.aclose()
            await runtime.client.close()

    # --- caches --------------------------------------------------------------------------

    @kopf.index(GROUP, VERSION, "analysisruns",
                when=is_owned, id="rollout_analysisruns", registry=registry)
    async def rollout_analysisruns(
        body: kopf.Body, namespace: str | None, **_: Any
    ) -> dict[Key, dict[str, Any]] | None:
        key = owner_key(body, namespace)
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
                        type: str | None, event: Mapping[str, Any], **_: Any) -> None:
        slim_kept_body(event.get("object"))  # the body kopf keeps for the daemon
        telemetry.observe_rollout(body, type)  # telemetry
        _runtime(memo).wake((namespace or "", name or ""))

    @kopf.on.event(GROUP, VERSION, "analysisruns",
                   when=is_owned, id="analysis_run_changed", registry=registry)
    async def analysis_run_changed(body: kopf.Body, namespace: str | None, name: str | None,
                             memo: Any, type: str | None, event: Mapping[str, Any],
                             **_: Any) -> None:
        slim_kept_body(event.get("object"))
        telemetry.observe_analysis_run(body, type)  # telemetry
        runtime = _runtime(memo)
        key = owner_key(body, namespace)
        if key is not None:
            runtime.wake(key)
        runtime.wake(run_key(namespace, name))

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
        # kopf's caches arrive as kwargs named after the index handlers; ours are in memo.
        caches = _caches(memo)
        replica_sets, services = caches.rollout_replicasets, caches.services_by_name
        analysis_runs = kwargs["rollout_analysisruns"]
        templates = (kwargs["analysis_templates"], kwargs["cluster_analysis_templates"])
        deployments = caches.deployments_by_name
        runtime = _runtime(memo)
        key: Key = (namespace or "", name)
        reconciler = Reconciler(config, runtime, key)
        reconciler.experiments = kwargs["rollout_experiments"]  # experiments
        if not await _caches_synced(caches, stopped) and not (
                body.get("metadata", {}).get("deletionTimestamp")):
            return  # stopped first; a deleted Rollout still waits (its finalizer needs them)
        await caches.wait_synced()
        if not runtime.serving:
            runtime.serving = True
            log.info("reconciling Rollouts")

        async def one_pass() -> float | None:
            async with runtime.passes:
                return await reconciler.reconcile(
                    body, replica_sets, services, analysis_runs, templates, deployments)

        await run_loop(config, runtime, key, stopped, telemetry.timed(one_pass),  # telemetry
                    {"rollout": reconciler.name})
        if body.get("metadata", {}).get("deletionTimestamp"):
            await reconciler.finalize(body)  # before kopf removes the finalizer
        else:  # stopping (shutdown, peering): what is held goes out now
            await reconciler.flush_events(body)

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
            snapshot = plain_copy(body)
            if (snapshot.get("status") or {}).get("phase") in COMPLETED_RUN_PHASES:
                raise Done  # finished runs need no daemon; a restart looks once more
            if str((snapshot.get("metadata") or {}).get("resourceVersion")) in superseded:
                return config.requeue_floor  # our write's watch event is on its way
            superseded.clear()
            requeue = await reconcile_analysis_run(
                runtime.client, snapshot, runtime.providers, config.clock.now(),
                on_write=superseded.add)
            if requeue == 0:  # a conflict: wait for the watch to bring the newer run
                raise ConflictError(409, "Conflict", "AnalysisRun status changed")
            return requeue

        await run_loop(config, runtime, run_key(namespace, name), stopped, one_pass,
                    {"analysisrun": f"{namespace}/{name}"})

    _register_experiments(registry, config)  # experiments
    return registry


# --- experiments: one daemon per Experiment, fed by indexes of what it owns ------------------


def _register_experiments(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.index(GROUP, VERSION, "analysisruns", when=is_experiment_owned,
                id="experiment_analysisruns", registry=registry)
    async def experiment_analysisruns(body: kopf.Body, namespace: str | None,
                                      **_: Any) -> dict[Key, dict[str, Any]] | None:
        key = experiment_owner_key(body, namespace)
        return None if key is None else {key: trim_analysis_run(body)}

    @kopf.index(GROUP, VERSION, "experiments", when=is_owned,
                id="rollout_experiments", registry=registry)
    async def rollout_experiments(body: kopf.Body, namespace: str | None,
                                  **_: Any) -> dict[Key, dict[str, Any]] | None:
        key = owner_key(body, namespace)
        return None if key is None else {key: trim_experiment(body)}

    @kopf.on.event(GROUP, VERSION, "analysisruns", when=is_experiment_owned,
                   id="experiment_analysis_run_changed", registry=registry)
    async def experiment_child_changed(body: kopf.Body, namespace: str | None, memo: Any,
                                       **_: Any) -> None:
        key = experiment_owner_key(body, namespace)
        if key is not None:
            _runtime(memo).wake(key)

    @kopf.on.event(GROUP, VERSION, "experiments", id="experiment_changed", registry=registry)
    async def experiment_changed(body: kopf.Body, namespace: str | None, name: str | None,
                                 memo: Any, event: Mapping[str, Any], **_: Any) -> None:
        slim_kept_body(event.get("object"))
        runtime = _runtime(memo)
        runtime.wake(experiment_key(namespace, name))
        rollout = owner_key(body, namespace)
        if rollout is not None:
            runtime.wake(rollout)

    @kopf.daemon(GROUP, VERSION, "experiments", id="experiment", registry=registry,
                 cancellation_backoff=config.cancellation_timeout, cancellation_timeout=1.0)
    async def experiment(body: kopf.Body, namespace: str | None, name: str, memo: Any,
                         stopped: kopf.DaemonStopped, **kwargs: Any) -> None:
        runtime, caches = _runtime(memo), _caches(memo)
        key = experiment_key(namespace, name)
        if not await _caches_synced(caches, stopped):
            return

        async def one_pass() -> float | None:
            snapshot = plain_copy(body)
            if (snapshot.get("metadata") or {}).get("deletionTimestamp"):
                raise Done
            templates = Templates.from_parsed([
                *kwargs["analysis_templates"].get(namespace or "", ()),
                *kwargs["cluster_analysis_templates"].get("", ())])
            plan = await reconcile_experiment(
                runtime.client, snapshot,
                replica_sets=list(caches.experiment_replicasets.get(key, ())),
                analysis_runs=list(kwargs["experiment_analysisruns"].get(key, ())),
                templates=templates, now=config.clock.now())
            if (plan.status.phase in COMPLETED_EXPERIMENT_PHASES and not plan.actions
                    and plan.requeue_after is None):
                raise Done  # ended and scaled down (scaleDownDelaySeconds over)
            return plan.requeue_after

        await run_loop(config, runtime, key, stopped, one_pass,
                    {"experiment": f"{namespace}/{name}"})


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
    registry = build_registry(dataclasses.replace(config, clusterwide=wide, namespaces=serve),
                              connection=connection, telemetry=telemetry)
    # The start-up burst's freed heap goes back to the system (rollouts.controller.allocator).
    trimmer = asyncio.create_task(release_freed_memory(), name="release freed memory")
    try:
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
    finally:
        trimmer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trimmer


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
    if threading.current_thread() is threading.main_thread():  # the process is the controller
        tune_collector()
        shrink_tls_read_buffers()
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
