"""One Rollout's pass: observe (the watch-fed caches) -> plan -> fold status changes that may
wait -> execute. Decides nothing itself: the planner decides (`planner.write_folding` and
`planner.events` say what waits), `kube.execute` writes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollouts.controller.config import OperatorConfig
from rollouts.controller.echoes import (
    ECHO_WAIT,
    NO_ECHO,
    Echo,
    RolloutEcho,
    awaited,
    look,
    missing,
    outcome_unknown,
    read_retry_in,
)
from rollouts.controller.parsed import Parsed, parse_once, version_of
from rollouts.controller.runtime import Key, Runtime, deployment_key
from rollouts.errors import KubeError, NotFoundError
from rollouts.kube.analysis import Templates
from rollouts.kube.cache import first
from rollouts.kube.execute import execute, post_events, status_unchanged, write_status
from rollouts.kube.observe import experiment_services, named_services, observe
from rollouts.kube.pods import read_pods
from rollouts.kube.routes import finalize_routes, read_routes
from rollouts.kube.workload import resolve_workload, workload_name
from rollouts.models.rollout import (
    GROUP,
    VERSION,
    CanaryStep,
    InvalidRollout,
    RolloutStatus,
    ValidRollout,
)
from rollouts.planner.events import EVENT_HOLD, Held, hold
from rollouts.planner.plan import plan as make_plan
from rollouts.planner.types import Event, Observed
from rollouts.planner.write_folding import Pending, fold, hold_seconds, may_wait, with_status

__all__ = ["ECHO_WAIT", "Reconciler"]

log = logging.getLogger("rollouts.operator")


@dataclass(frozen=True)
class Unsure:
    """A status write whose outcome is unknown, and what the pass would have kept had it
    landed: its Events, posted once the Rollout shows the status (else planned again)."""

    status: RolloutStatus
    events: tuple[Event, ...]
    held: Held


class Reconciler:
    """One Rollout's observe -> plan -> execute passes. State between passes: the last
    parsed version of the Rollout; the versions our status writes replaced, until the
    watch shows them (`echoes.RolloutEcho`); a status and Events held back for the next
    write, at most a few seconds."""

    def __init__(self, config: OperatorConfig, runtime: Runtime, key: Key) -> None:
        self.config = config
        self.runtime = runtime
        self.key = key
        self.name = f"{key[0]}/{key[1]}"
        self.parsed: Parsed | None = None  # the last version parsed (watched or read)
        self.echo: RolloutEcho = NO_ECHO  # versions behind our status writes
        self.unsure: Unsure | None = None  # a status write of unknown outcome
        self.read_failures = 0  # fresh reads of the Rollout failed in a row
        self.pending: Pending | None = None  # a status held back (planner.write_folding)
        self.pending_since: dt.datetime | None = None  # held since (until written)
        self.pending_until: dt.datetime | None = None  # the hold's end
        self.echoes: tuple[Echo, ...] = ()  # the last pass's writes not yet in the caches
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
        metadata = body.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            return None
        now = self.config.clock.now()
        current = await self._current(body, version_of(metadata), now)
        if not isinstance(current, Parsed):
            return current  # the Rollout's watch event wakes us (None: it is gone)
        if self.unsure is not None:
            await self._settle(current, now)
        if self.echoes and (wait := await self._echo_wait(current, replica_sets,
                                                          services)) is not None:
            return wait  # their watch events wake us

        rv = current.resource_version
        rollout = current.rollout  # validated once per version; every step reads this
        written = rollout.status  # as on the server
        if self.pending is not None and self.pending.resource_version != rv:
            self.pending = None  # the Rollout changed since: plan from the server's status
        if self.pending is not None:  # plan on from the status held, as if it were written
            rollout = dataclasses.replace(rollout, status=self.pending.status)
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
        waits = may_wait(written, planned, plan.actions, plan.events, posting_events=False,
                         steps=_canary_steps(rollout))
        # Due Events wait with this status when it may wait (write_folding rule 3).
        post, late = with_status(post, status_may_wait=waits)
        folded = fold(written, planned, may_wait=waits, pending_since=self.pending_since,
                      requeue_after=plan.requeue_after, now=now,
                      seconds=hold_seconds(written, planned))
        if folded.write:
            post, late = post + late, ()
        elif folded.until is not None and (late or held.events):
            # Held Events go out with the held status, never before: due at its hold's end.
            since = folded.until - EVENT_HOLD
            held = Held(late or held.events, since if held.since is None or late
                        else max(held.since, since))
        if not folded.write:  # the next write (or the end of the hold) carries it
            plan = dataclasses.replace(plan, status=written, requeue_after=folded.requeue_after)
        status_changes = not status_unchanged(current.status, plan.status)
        try:
            wrote = await execute(self.runtime.client, rollout.metadata, current.status,
                                  dataclasses.replace(plan, events=post), now,
                                  self.runtime.events)
        except Exception as exc:
            if status_changes and outcome_unknown(exc):  # it may have landed: read first
                self.echo = self.echo.after_write(rv, now, landed=False)
                self.unsure = Unsure(plan.status, post, held)
            raise
        # Only once applied: a conflict plans them again.
        self.held = held
        self.pending = None if folded.write else Pending(rv, planned)
        self.pending_since, self.pending_until = folded.pending_since, folded.until
        self.echoes = awaited(plan.actions)  # the next pass plans once the caches show them
        self.echoes_until = now + dt.timedelta(seconds=ECHO_WAIT)
        if status_changes:
            self.echo = self.echo.after_write(rv, now, landed=True)
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

    async def _current(self, body: Mapping[str, Any], version: tuple[str, str],
                       now: dt.datetime) -> Parsed | float | None:
        """The version of the Rollout to plan from (`echoes.look`): the watched body, once
        it is past every version our status writes replaced; else the one last read fresh
        while it is not behind; else the seconds to wait for the watch, and once the wait
        is up (at once after a write of unknown outcome) the Rollout read fresh (None:
        it is gone)."""
        latest = self.parsed.resource_version if self.parsed is not None else None
        where = look(self.echo, version[1], latest, now)
        if isinstance(where, float):
            return where
        if where == "watched":
            self.echo = NO_ECHO
            self.parsed = parse_once(self.parsed, body, version)
        elif where == "read":
            log.debug("status write not seen in the watch; reading the Rollout",
                      extra={"rollout": self.name})
            try:
                fresh = await self.runtime.client.get(GROUP, VERSION, "rollouts", *self.key)
            except NotFoundError:
                return None
            except Exception as exc:
                retry_in = read_retry_in(exc, self.read_failures + 1)
                if retry_in is None:
                    raise
                self.read_failures += 1  # the watch may bring the write first: it wakes us
                log.log(logging.WARNING if self.read_failures >= 3 else logging.DEBUG,
                        "reading the Rollout failed; again soon",
                        extra={"rollout": self.name, "error": str(exc),
                               "failures": self.read_failures, "retry_in": retry_in})
                return retry_in
            self.read_failures = 0
            self.parsed = parse_once(self.parsed, fresh)
            self.echo = self.echo.read(self.parsed.resource_version)
        assert self.parsed is not None  # "latest" names a version read before
        return self.parsed

    async def _settle(self, current: Parsed, now: dt.datetime) -> None:
        """A status write of unknown outcome, settled by the Rollout planned from: if it
        shows the status written, the write landed and its pass's Events go out now (its
        notifications go with this pass's status, which is that one)."""
        unsure, self.unsure = self.unsure, None
        if unsure is None or not status_unchanged(current.status, unsure.status):
            return  # lost: this pass plans it again
        self.held = unsure.held
        self.pending, self.pending_since, self.pending_until = None, None, None
        self.echoes = ()
        if unsure.events:
            await post_events(self.runtime.client, current.rollout.metadata, unsure.events,
                              now, self.runtime.events)

    async def _echo_wait(self, current: Parsed, replica_sets: Any,
                         services: Any) -> float | None:
        """Seconds to wait for the echoes of the last pass's writes (None: plan now). Never
        past the end of a hold: what is held goes out on time, as it was planned (the held
        status, if the Rollout is still the one it was planned from, then the held
        Events), and the wait goes on; else (someone changed the Rollout) this pass plans
        from the caches as they are (a stale view costs a no-op create or a 409, as after
        ECHO_WAIT)."""
        namespace = self.key[0]
        now = self.config.clock.now()
        self.echoes = missing(self.echoes, replica_sets.get(self.key, ()),
                              lambda name: first(services.get((namespace, name))))
        left = ((self.echoes_until - now).total_seconds()
                if self.echoes_until is not None else 0.0)
        if not self.echoes or left <= 0:
            self.echoes = ()
            return None
        held_left = (None if self.pending_until is None
                     else (self.pending_until - now).total_seconds())
        due = _sooner(self.held.due_in(now), held_left)
        if due is not None and due <= 0:
            if not await self._write_held(current, now):
                self.echoes = ()
                return None
            due = None
        return _sooner(left, due)

    async def _write_held(self, current: Parsed, now: dt.datetime) -> bool:
        """Write the status held back (if the Rollout is still the one it was planned from)
        and then post the Events held; False (nothing written) when a held status no longer
        applies: the pass must plan again. Raises what the writes raise."""
        pending = self.pending
        if pending is not None and pending.resource_version != current.resource_version:
            return False
        events = self.held.events
        if pending is not None:
            rollout = current.rollout
            await write_status(self.runtime.client, rollout.metadata, current.status,
                               pending.status)
            self.echo = self.echo.after_write(pending.resource_version, now, landed=True)
            if self.runtime.notifier is not None:
                self.runtime.notifier.submit(self.key, pending.status)
        self.pending, self.pending_since, self.pending_until = None, None, None
        self.held = Held()
        if events:
            await post_events(self.runtime.client, current.rollout.metadata, events, now,
                              self.runtime.events)
        return True

    async def flush_events(self, body: Mapping[str, Any]) -> None:
        """The daemon is stopping: write the status held back, if the Rollout is still the
        one it was planned from, then post the Events still held; logged, never raised."""
        pending, self.pending = self.pending, None
        self.pending_since = self.pending_until = None
        events, self.held = self.held.events, Held()
        if pending is None and not events:
            return
        current = parse_once(self.parsed, body)
        rollout = current.rollout
        if pending is not None and pending.resource_version == current.resource_version:
            try:
                await write_status(self.runtime.client, rollout.metadata, current.status,
                                   pending.status)
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
        rollout = parse_once(self.parsed, body).rollout
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
