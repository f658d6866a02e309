"""One Rollout's pass: observe (the watch-fed caches) -> plan -> fold status changes that may
wait -> execute. Decides nothing itself: the planner decides (`planner.write_folding` and
`planner.events` say what waits), `kube.execute` writes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from rollouts.controller.config import OperatorConfig
from rollouts.controller.echoes import Echo, awaited, missing
from rollouts.controller.runtime import Key, Runtime, deployment_key
from rollouts.errors import KubeError
from rollouts.kube.analysis import Templates
from rollouts.kube.cache import first, plain_copy
from rollouts.kube.execute import execute, post_events, status_unchanged, write_status
from rollouts.kube.observe import experiment_services, named_services, observe
from rollouts.kube.pods import read_pods
from rollouts.kube.routes import finalize_routes, read_routes
from rollouts.kube.workload import resolve_workload, workload_name
from rollouts.models.rollout import CanaryStep, InvalidRollout, ValidRollout, parse_rollout
from rollouts.planner.events import Held, hold
from rollouts.planner.plan import plan as make_plan
from rollouts.planner.types import Observed
from rollouts.planner.write_folding import FOLD_SECONDS, Pending, fold, may_wait

log = logging.getLogger("rollouts.operator")

# How long to trust that our own status write will come back through the watch before
# planning on the (then stale) body anyway.
ECHO_WAIT = 5.0


class Reconciler:
    """One Rollout's observe -> plan -> execute passes (state between passes: the
    resourceVersion of our last status write, to wait for its echo; a status and Events
    held back for the next write, at most a few seconds)."""

    def __init__(self, config: OperatorConfig, runtime: Runtime, key: Key) -> None:
        self.config = config
        self.runtime = runtime
        self.key = key
        self.name = f"{key[0]}/{key[1]}"
        self.written_over: str | None = None  # the rv our last status write replaced
        self.pending: Pending | None = None  # a status held back (planner.write_folding)
        self.pending_since: dt.datetime | None = None  # held since (until written)
        self.echoes: tuple[Echo, ...] = ()  # a held pass's writes not yet in the caches
        self.echoes_until: dt.datetime | None = None
        self.held = Held()  # Events waiting for the next transition (planner.events rule 4)
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
        snapshot: dict[str, Any] = plain_copy(body)
        metadata = snapshot.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            return None
        rv = str(metadata.get("resourceVersion") or "")
        if self.written_over is not None and rv == self.written_over:
            # Our own status write has not come back yet: planning now would plan from the
            # status we just replaced. The Rollout's watch event wakes us.
            self.written_over = None
            return ECHO_WAIT
        self.written_over = None
        if self.echoes and (wait := self._echo_wait(replica_sets, services)) is not None:
            return wait  # their watch events wake us

        rollout = parse_rollout(snapshot)  # validated once; every step below reads this
        written = rollout.status  # as on the server
        if self.pending is not None and self.pending.resource_version != rv:
            self.pending = None  # the Rollout changed since: plan from the server's status
        if self.pending is not None:  # plan on from the status held, as if it were written
            rollout = dataclasses.replace(rollout, status=self.pending.status)
        now = self.config.clock.now()
        observed = Observed()
        deployment = None  # workloadRef: the template comes from the Deployment
        watched: tuple[str, ...] = ()
        if isinstance(rollout, ValidRollout) and (wanted := workload_name(rollout)):
            deployment = first((deployments or {}).get((self.key[0], wanted)))
            rollout, watched = resolve_workload(rollout, deployment), (deployment_key(wanted),)
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
        # Events of a transition the Rollout only passes through wait for the next one.
        # (A timed pause that ends within the hold is passed through too.)
        post, held = hold(self.held, plan.events, resting=plan.status.phase != "Progressing",
                          now=now, moves_in=plan.requeue_after
                          if plan.status.phase == "Paused" else None)
        planned = plan.status
        folded = fold(written, planned, may_wait=may_wait(
            written, planned, plan.actions, plan.events, posting_events=bool(post),
            steps=_canary_steps(rollout)),
            pending_since=self.pending_since, requeue_after=plan.requeue_after, now=now)
        if not folded.write:  # the next write (or the end of the hold) carries it
            plan = dataclasses.replace(plan, status=written, requeue_after=folded.requeue_after)
        status_changes = not status_unchanged(snapshot.get("status"), plan.status)
        wrote = await execute(self.runtime.client, rollout.metadata, snapshot.get("status"),
                              dataclasses.replace(plan, events=post), now, self.runtime.events)
        # Only once applied: a conflict plans them again.
        self.held = held
        self.pending = None if folded.write else Pending(rv, planned)
        self.pending_since = folded.pending_since
        self.echoes = () if folded.write else awaited(plan.actions)
        self.echoes_until = now + dt.timedelta(seconds=ECHO_WAIT)
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
                    "status_held": not folded.write,
                },
            )
        return _sooner(plan.requeue_after, held.due_in(now))

    def _echo_wait(self, replica_sets: Any, services: Any) -> float | None:
        """Seconds to wait for the echoes of a held pass's writes (None: plan now). Never
        past the end of a hold: what is held goes out on time, planned from the caches as
        they are (a stale view costs a no-op create or a 409, as after ECHO_WAIT)."""
        namespace = self.key[0]
        now = self.config.clock.now()
        self.echoes = missing(self.echoes, replica_sets.get(self.key, ()),
                              lambda name: first(services.get((namespace, name))))
        left = ((self.echoes_until - now).total_seconds()
                if self.echoes_until is not None else 0.0)
        held_left = (None if self.pending_since is None else
                     FOLD_SECONDS - (now - self.pending_since).total_seconds())
        due = _sooner(self.held.due_in(now), held_left)
        if not self.echoes or left <= 0 or (due is not None and due <= 0):
            self.echoes = ()
            return None
        return _sooner(left, due)

    async def flush_events(self, body: Mapping[str, Any]) -> None:
        """The daemon is stopping: write the status held back, if the Rollout is still the
        one it was planned from, then post the Events still held; logged, never raised."""
        pending, self.pending, self.pending_since = self.pending, None, None
        events, self.held = self.held.events, Held()
        if pending is None and not events:
            return
        snapshot = plain_copy(body)
        rollout = parse_rollout(snapshot)
        if pending is not None and pending.resource_version == str(
                rollout.metadata.resource_version or ""):
            try:
                await write_status(self.runtime.client, rollout.metadata,
                                   snapshot.get("status"), pending.status)
            except KubeError as exc:  # stale: the next controller plans it again
                log.warning("held status not written", extra={"rollout": self.name,
                                                              "error": str(exc)})
                return  # nor its Events: they would come before their transition
        if events:
            await post_events(self.runtime.client, rollout.metadata, events,
                              self.config.clock.now(), self.runtime.events)

    async def finalize(self, body: Mapping[str, Any]) -> None:
        """A deleted Rollout's routes back to all-stable, its managed routes and owned route
        objects gone; logged, never raised (the Rollout must still go away)."""
        rollout = parse_rollout(plain_copy(body))
        factory = self.config.router_factory
        router = factory(rollout, experiment_services(  # the routes may still name them
            self.experiments.get(self.key, ()), rollout.metadata.uid)
        ) if factory and isinstance(rollout, ValidRollout) else None
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
        self.runtime.set_services(self.key, wanted + ((deployment_key(workload),)
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


def _canary_steps(rollout: ValidRollout | InvalidRollout) -> list[CanaryStep]:
    canary = rollout.spec.strategy.canary if isinstance(rollout, ValidRollout) else None
    return list(canary.steps or []) if canary is not None else []


def _sooner(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)
