"""A given/when/then DSL for end-to-end scenarios on the sandbox (DESIGN.md §5).

    s = scenario(sb).given(rollout("web", canary(set_weight(25), pause())))
    s.when(image("web:2")).then(paused(at_step=1), weights(canary=25), sizes(canary=1, stable=3))
    s.when(promote()).then(healthy(), sizes(stable=4, others=0))

* `given(...)` applies Services and Rollouts and (by default) waits until each is Healthy on
  its first revision; the last one named becomes the scenario's current Rollout
  (`s.of(name)` talks about another one).
* `when(...)` runs actions: spec changes (`image`, `revert`, `patch`), operations through the
  real CLI (`promote`, `promote(full=True)`, `abort`, `retry`), pod readiness
  (`pods_ready(role, False)`), and the controller's life (`kill_controller`,
  `start_controller`).
* `then(...)` waits (deadline based, 30 s by default) until every check holds at once, and
  fails with the Rollout's status, message, conditions, ReplicaSet sizes by role and Service
  selectors. `holds(..., seconds=)` asserts that checks stay true for a while.

Roles name ReplicaSets by what the Rollout's status says they are: `stable` (status.stableRS),
`canary` (status.currentPodHash while it differs from stableRS), `others` (every other
revision), or a label saved with `s.remember(label, role)`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from typer.testing import CliRunner

from rollouts.cli.main import app
from rollouts.models.rollout import POD_TEMPLATE_HASH_LABEL
from rollouts.sandbox.cluster import GROUP, VERSION, Sandbox

DEFAULT_TIMEOUT = 30.0
ROLES = ("stable", "canary", "others")

Obj = dict[str, Any]


# --- manifests ---------------------------------------------------------------------------------


def set_weight(weight: int) -> Obj:
    return {"setWeight": weight}


def pause(seconds: int | str | None = None) -> Obj:
    """A pause step; without a duration it waits for `promote`."""
    return {"pause": {} if seconds is None else {"duration": seconds}}


@dataclasses.dataclass(frozen=True)
class Strategy:
    kind: str  # "canary" | "blueGreen"
    body: Obj
    # strategy field -> suffix of the Service created for it (name "<rollout>-<suffix>")
    services: dict[str, str]


def canary(*steps: Obj, services: bool = True, **fields: Any) -> Strategy:
    """A canary strategy; with `services`, `<name>-stable` and `<name>-canary` are created."""
    body = {"steps": list(steps), "scaleDownDelaySeconds": 0, **fields}
    named = {"stableService": "stable", "canaryService": "canary"} if services else {}
    return Strategy("canary", body, named)


def blue_green(*, auto_promotion: bool = True, scale_down_delay: int = 1,
               **fields: Any) -> Strategy:
    """A blue-green strategy with `<name>-active` and `<name>-preview` Services."""
    body = {"autoPromotionEnabled": auto_promotion, "scaleDownDelaySeconds": scale_down_delay,
            **fields}
    return Strategy("blueGreen", body, {"activeService": "active",
                                        "previewService": "preview"})


def service_manifest(name: str, app_label: str) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": app_label}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def rollout_manifest(name: str, strategy: Strategy, *, replicas: int = 4,
                     image: str | None = None, **spec: Any) -> tuple[Obj, list[Obj]]:
    """The Rollout and the Services its strategy names."""
    body = dict(strategy.body)
    services = []
    for field, suffix in strategy.services.items():
        body.setdefault(field, f"{name}-{suffix}")
        services.append(service_manifest(body[field], name))
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image or f"{name}:1"}]},
            },
            "strategy": {strategy.kind: body},
            **spec,
        },
    }
    return manifest, services


# --- what the cluster looks like ---------------------------------------------------------------


@dataclasses.dataclass
class World:
    """One consistent-enough look at a Rollout and what it owns."""

    name: str
    rollout: Obj
    replica_sets: dict[str, Obj]
    memory: dict[str, str]

    @property
    def status(self) -> Obj:
        return dict(self.rollout.get("status") or {})

    @property
    def current(self) -> bool:
        """The controller has seen the latest spec."""
        return self.status.get("observedGeneration") == self.rollout["metadata"].get("generation")

    def hash_of(self, role: str) -> str | None:
        if role in self.memory:
            return self.memory[role]
        status = self.status
        if role == "stable":
            return status.get("stableRS")
        if role in ("canary", "new"):
            current = status.get("currentPodHash")
            return current if current and current != status.get("stableRS") else None
        raise KeyError(f"unknown role {role!r} (roles: {ROLES}, remembered: {list(self.memory)})")

    def others(self) -> list[str]:
        named = {self.hash_of("stable"), self.hash_of("canary")}
        return [h for h in self.replica_sets if h not in named]

    def size(self, pod_hash: str | None) -> tuple[int, int]:
        rs = self.replica_sets.get(pod_hash or "")
        if rs is None:
            return 0, 0
        return int(rs["spec"].get("replicas", 0)), int((rs.get("status") or {}).get(
            "availableReplicas", 0))

    def role_of(self, pod_hash: str) -> str:
        names = [label for label, h in self.memory.items() if h == pod_hash]
        names += [r for r in ("stable", "canary") if self.hash_of(r) == pod_hash]
        return "/".join(names) or "other"


def observe(sb: Sandbox, name: str, memory: dict[str, str]) -> World:
    return World(name, sb.rollout(name), sb.replica_sets(name), memory)


def describe(sb: Sandbox, world: World) -> str:
    """Everything a failing scenario's reader wants to see."""
    s = world.status
    lines = [
        f"rollout {world.name}: phase={s.get('phase')} step={s.get('currentStepIndex')} "
        f"stableRS={s.get('stableRS')} currentPodHash={s.get('currentPodHash')} "
        f"abort={s.get('abort')} generation={world.rollout['metadata'].get('generation')} "
        f"observedGeneration={s.get('observedGeneration')}",
        f"  message: {s.get('message')!r}",
        "  conditions: " + ", ".join(
            f"{c.get('type')}={c.get('status')}({c.get('reason')})"
            for c in s.get("conditions") or []),
        f"  weights: {((s.get('canary') or {}).get('weights'))}",
        f"  pauseConditions: {s.get('pauseConditions')}",
        "  replicasets: " + ", ".join(
            f"{h}[{world.role_of(h)}] spec={world.size(h)[0]} available={world.size(h)[1]}"
            for h in sorted(world.replica_sets)),
    ]
    selectors = []
    strategy = (world.rollout.get("spec") or {}).get("strategy") or {}
    for body in strategy.values():
        for field in ("stableService", "canaryService", "activeService", "previewService"):
            svc = (body or {}).get(field)
            if svc:
                try:
                    pinned = sb.service_selector(svc).get(POD_TEMPLATE_HASH_LABEL)
                except Exception as exc:  # a missing Service is part of the picture
                    pinned = f"<{exc}>"
                selectors.append(f"{svc} -> {pinned}")
    lines.append("  services: " + (", ".join(selectors) or "-"))
    return "\n".join(lines)


# --- checks ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Check:
    """`test(sb, world)` returns None when the check holds, else why not."""

    text: str
    test: Callable[[Sandbox, World], str | None]

    def __str__(self) -> str:
        return self.text


def phase(expected: str, *, step: int | None = None) -> Check:
    def test(_: Sandbox, w: World) -> str | None:
        if not w.current:
            return "the controller has not seen the latest generation yet"
        s = w.status
        if s.get("phase") != expected:
            return f"phase is {s.get('phase')}"
        if step is not None and s.get("currentStepIndex") != step:
            return f"step is {s.get('currentStepIndex')}"
        return None

    return Check(f"phase {expected}" + (f" at step {step}" if step is not None else ""), test)


def paused(*, at_step: int | None = None) -> Check:
    return phase("Paused", step=at_step)


def progressing(*, at_step: int | None = None) -> Check:
    return phase("Progressing", step=at_step)


def healthy() -> Check:
    """Healthy on the desired revision, Ready=True."""

    def test(sb: Sandbox, w: World) -> str | None:
        why = phase("Healthy").test(sb, w)
        if why:
            return why
        s = w.status
        if s.get("stableRS") != s.get("currentPodHash"):
            return f"stableRS {s.get('stableRS')} != currentPodHash {s.get('currentPodHash')}"
        return condition("Ready", "True").test(sb, w)

    return Check("Healthy", test)


def degraded(message: str | None = None) -> Check:
    def test(sb: Sandbox, w: World) -> str | None:
        return phase("Degraded").test(sb, w) or (
            message_contains(message).test(sb, w) if message else None)

    return Check("Degraded" + (f" ({message!r})" if message else ""), test)


def message_contains(text: str) -> Check:
    def test(_: Sandbox, w: World) -> str | None:
        msg = w.status.get("message") or ""
        return None if text in msg else f"message is {msg!r}"

    return Check(f"message contains {text!r}", test)


def step(index: int) -> Check:
    def test(_: Sandbox, w: World) -> str | None:
        got = w.status.get("currentStepIndex")
        return None if w.current and got == index else f"step is {got}"

    return Check(f"step {index}", test)


def aborted(expected: bool = True) -> Check:
    def test(_: Sandbox, w: World) -> str | None:
        got = bool(w.status.get("abort"))
        return None if got == expected else f"abort is {w.status.get('abort')}"

    return Check("aborted" if expected else "not aborted", test)


def condition(type_: str, status: str = "True", *, reason: str | None = None,
              message: str | None = None) -> Check:
    def test(_: Sandbox, w: World) -> str | None:
        found = next((c for c in w.status.get("conditions") or [] if c.get("type") == type_),
                     None)
        if found is None:
            return f"no {type_} condition"
        if found.get("status") != status:
            return f"{type_} is {found.get('status')}"
        if reason is not None and found.get("reason") != reason:
            return f"{type_} reason is {found.get('reason')}"
        if message is not None and message not in (found.get("message") or ""):
            return f"{type_} message is {found.get('message')!r}"
        return None

    extra = "".join(f" {k}={v!r}" for k, v in (("reason", reason), ("message", message)) if v)
    return Check(f"condition {type_}={status}{extra}", test)


def weights(*, canary: int | None = None, stable: int | None = None) -> Check:
    """status.canary.weights: the traffic share each side actually has."""

    def test(_: Sandbox, w: World) -> str | None:
        got = (w.status.get("canary") or {}).get("weights") or {}
        have = {"canary": (got.get("canary") or {}).get("weight"),
                "stable": (got.get("stable") or {}).get("weight")}
        for side, want in (("canary", canary), ("stable", stable)):
            if want is not None and have[side] != want:
                return f"weights are {have}"
        return None

    wanted = ", ".join(f"{k}={v}" for k, v in (("canary", canary), ("stable", stable))
                       if v is not None)
    return Check(f"weights({wanted})", test)


def sizes(**roles: int | tuple[int, int]) -> Check:
    """ReplicaSet sizes by role: `n` means n in spec and n available, `(spec, available)`
    checks both separately. `others=0` means every other revision is at 0 (or gone)."""

    def test(_: Sandbox, w: World) -> str | None:
        problems = []
        for role, want in roles.items():
            expected = want if isinstance(want, tuple) else (want, want)
            hashes = w.others() if role == "others" else [w.hash_of(role)]
            for h in hashes:
                if role != "others" and h is None and expected != (0, 0):
                    problems.append(f"no {role} revision")
                    continue
                got = w.size(h)
                if got != expected:
                    problems.append(f"{role} {h} is (spec, available)={got}, want {expected}")
        return "; ".join(problems) or None

    return Check("sizes(" + ", ".join(f"{k}={v}" for k, v in roles.items()) + ")", test)


def selector(service: str, role: str) -> Check:
    """The Service's pod-template-hash selector is pinned to the role's revision."""

    def test(sb: Sandbox, w: World) -> str | None:
        want = w.hash_of(role)
        got = sb.service_selector(service).get(POD_TEMPLATE_HASH_LABEL)
        if want is None:
            return f"no {role} revision"
        return None if got == want else f"{service} selects {got}, {role} is {want}"

    return Check(f"{service} -> {role}", test)


def stable_is(label: str) -> Check:
    def test(_: Sandbox, w: World) -> str | None:
        got = w.status.get("stableRS")
        return None if got == w.memory[label] else f"stableRS is {got}, {label} is " \
                                                    f"{w.memory[label]}"

    return Check(f"stable is {label}", test)


# --- actions -----------------------------------------------------------------------------------

Action = Callable[["Scenario"], None]


def image(new_image: str) -> Action:
    def act(s: Scenario) -> None:
        s.sb.set_image(s.name, new_image)

    return act


def revert() -> Action:
    """A Git revert: the template goes back to what the stable revision runs."""

    def act(s: Scenario) -> None:
        world = s.world()
        stable = world.replica_sets[world.hash_of("stable") or ""]
        containers = stable["spec"]["template"]["spec"]["containers"]
        s.sb.set_image(s.name, containers[0]["image"])

    return act


def patch(spec: Obj) -> Action:
    def act(s: Scenario) -> None:
        s.sb.patch_spec(s.name, spec)

    return act


def cli(*args: str) -> Action:
    """Run `rollouts <args> <current rollout>` through the real CLI; it must succeed."""

    def act(s: Scenario) -> None:
        s.cli(*args, s.name)

    return act


def promote(*, full: bool = False) -> Action:
    return cli("promote", *(["--full"] if full else []))


def abort() -> Action:
    return cli("abort")


def retry() -> Action:
    return cli("retry")


def pods_ready(role: str, ready: bool = True) -> Action:
    """Force the readiness of every pod of a revision (a failing or recovering probe)."""

    def act(s: Scenario) -> None:
        pod_hash = s.world().hash_of(role)
        for pod in s.sb.emulator.list_objects("", "v1", "pods", s.sb.namespace):
            if (pod["metadata"].get("labels") or {}).get(POD_TEMPLATE_HASH_LABEL) == pod_hash:
                s.sb.kubelet.set_pod_ready(s.sb.namespace, pod["metadata"]["name"], ready)

    return act


def kill_controller() -> Action:
    return lambda s: s.sb.kill_controller()


def start_controller(*, process: bool = False) -> Action:
    """Start the controller. A subprocess counts as started once it watches Rollouts and,
    when there are Rollouts, has handled one (its reconcile daemon starts with that)."""

    def act(s: Scenario) -> None:
        key = ("watch", "rollouts")
        before = s.sb.emulator.requests[key]
        log = s.sb.workdir / "controller.log"
        offset = log.stat().st_size if log.exists() else 0
        s.sb.start_controller(process=process)
        if not process:
            return
        s.sb.wait_for("the controller process to watch Rollouts",
                      lambda: s.sb.emulator.requests[key] > before)
        if s.sb.emulator.list_objects(GROUP, VERSION, "rollouts", s.sb.namespace):
            def handled() -> bool:
                with log.open("rb") as f:
                    f.seek(offset)
                    return b"reconciling Rollouts" in f.read()

            s.sb.wait_for("the controller process to handle a Rollout", handled)

    return act


def sleep(seconds: float) -> Action:
    return lambda s: time.sleep(seconds)


# --- the scenario ------------------------------------------------------------------------------


@dataclasses.dataclass
class Given:
    name: str
    manifests: list[Obj]
    wait: bool


def rollout(name: str, strategy: Strategy, *, replicas: int = 4, image: str | None = None,
            wait: bool = True, **spec: Any) -> Given:
    """A Rollout (and its Services); with `wait`, Healthy on its first revision."""
    manifest, services = rollout_manifest(name, strategy, replicas=replicas, image=image, **spec)
    return Given(name, [*services, manifest], wait)


class Scenario:
    def __init__(self, sb: Sandbox, name: str | None = None, *,
                 memory: dict[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sb = sb
        self._name = name
        self.memory: dict[str, str] = {} if memory is None else memory
        self.timeout = timeout

    @property
    def name(self) -> str:
        if self._name is None:
            raise AssertionError("no Rollout yet: start with given(rollout(...))")
        return self._name

    def of(self, name: str) -> Scenario:
        """The same scenario, talking about another Rollout."""
        return Scenario(self.sb, name, memory=self.memory, timeout=self.timeout)

    def world(self) -> World:
        return observe(self.sb, self.name, self.memory)

    # -- given / when / then
    def given(self, *items: Given) -> Scenario:
        for item in items:
            self.sb.apply(item.manifests)
            self._name = item.name
        for item in items:
            if item.wait:
                self.of(item.name).then(healthy(), sizes(stable=_replicas(item)))
        return self

    def when(self, *actions: Action) -> Scenario:
        for act in actions:
            act(self)
        return self

    def then(self, *checks: Check, timeout: float | None = None) -> Scenario:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            world = self.world()
            unmet = [(c, why) for c in checks if (why := c.test(self.sb, world))]
            if not unmet:
                return self
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {timeout or self.timeout:.0f}s waiting for "
                    + ", ".join(str(c) for c in checks) + "\n  unmet: "
                    + "; ".join(f"{c}: {why}" for c, why in unmet) + "\n"
                    + describe(self.sb, world))
            time.sleep(0.05)

    def holds(self, *checks: Check, seconds: float) -> Scenario:
        """Every check stays true for `seconds` (sampled)."""
        self.then(*checks)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            world = self.world()
            unmet = [(c, why) for c in checks if (why := c.test(self.sb, world))]
            if unmet:
                raise AssertionError(
                    "expected to hold: " + ", ".join(str(c) for c in checks) + "\n  broke: "
                    + "; ".join(f"{c}: {why}" for c, why in unmet) + "\n"
                    + describe(self.sb, world))
            time.sleep(0.05)
        return self

    # -- helpers
    def remember(self, label: str, role: str) -> str:
        """Save the revision that has `role` now under `label` (e.g. "v1" for the stable)."""
        if label in ROLES:
            raise ValueError(f"{label!r} is a role name")
        pod_hash = self.world().hash_of(role)
        if pod_hash is None:
            raise AssertionError(f"no {role} revision to remember as {label}\n"
                                 + describe(self.sb, self.world()))
        self.memory[label] = pod_hash
        return pod_hash

    def hash(self, role: str) -> str:
        pod_hash = self.world().hash_of(role)
        assert pod_hash is not None, f"no {role} revision"
        return pod_hash

    def cli(self, *args: str, ok: bool = True) -> Any:
        result = CliRunner().invoke(
            app, ["--kubeconfig", str(self.sb.kubeconfig), "-n", self.sb.namespace, *args])
        if ok and result.exit_code != 0:
            raise AssertionError(
                f"`rollouts {' '.join(args)}` exited {result.exit_code}: {result.output}"
                + (f"\n{result.exception!r}"
                   if result.exception and not isinstance(result.exception, SystemExit) else "")
                + "\n"
                + describe(self.sb, self.world()))
        return result

    @contextmanager
    def recording(self, interval: float = 0.02) -> Iterator[Trace]:
        """Sample the Rollout, its ReplicaSets and Services in the background."""
        trace = Trace()
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                try:
                    trace.add(self.sb, self.world())
                except Exception as exc:  # a sample lost to shutdown is not a finding
                    trace.errors.append(exc)
                stop.wait(interval)

        thread = threading.Thread(target=run, name="scenario-trace", daemon=True)
        thread.start()
        try:
            yield trace
        finally:
            stop.set()
            thread.join(timeout=5)
        # The state the block ended on is part of the trace: on a loaded machine the
        # sampler may not have looked since the change the block waited for.
        trace.add(self.sb, self.world())


def _replicas(item: Given) -> int:
    rollout_obj = next(m for m in item.manifests if m["kind"] == "Rollout")
    return int(rollout_obj["spec"].get("replicas", 1))


@dataclasses.dataclass
class Sample:
    """One look: ReplicaSets (`sizes_before`), then Services, then ReplicaSets again.

    Something seen in `sizes_before` happened before the selectors were read (use it for
    "scaled down only after traffic moved away"); something seen in `selectors` happened
    before `sizes` was read (use it for "traffic moved only to available pods")."""

    status: Obj
    generation: int
    sizes_before: dict[str, tuple[int, int]]
    selectors: dict[str, str | None]
    sizes: dict[str, tuple[int, int]]
    annotations: dict[str, dict[str, str]]


@dataclasses.dataclass
class Trace:
    samples: list[Sample] = dataclasses.field(default_factory=list)
    errors: list[Exception] = dataclasses.field(default_factory=list)

    def add(self, sb: Sandbox, world: World) -> None:
        selectors: dict[str, str | None] = {}
        strategy = (world.rollout.get("spec") or {}).get("strategy") or {}
        for body in strategy.values():
            for field in ("stableService", "canaryService", "activeService", "previewService"):
                svc = (body or {}).get(field)
                if svc:
                    selectors[svc] = sb.service_selector(svc).get(POD_TEMPLATE_HASH_LABEL)
        sets = sb.replica_sets(world.name)
        self.samples.append(Sample(
            status=world.status,
            generation=int(world.rollout["metadata"].get("generation") or 0),
            sizes_before={h: world.size(h) for h in world.replica_sets},
            selectors=selectors,
            sizes={h: (int(rs["spec"].get("replicas", 0)),
                       int((rs.get("status") or {}).get("availableReplicas", 0)))
                   for h, rs in sets.items()},
            annotations={h: dict(rs["metadata"].get("annotations") or {})
                         for h, rs in sets.items()},
        ))

    def points(self) -> list[tuple[Any, Any]]:
        """The distinct (phase, step) the Rollout went through, in order."""
        seen: list[tuple[Any, Any]] = []
        for sample in self.samples:
            point = (sample.status.get("phase"), sample.status.get("currentStepIndex"))
            if not seen or seen[-1] != point:
                seen.append(point)
        return seen


def scenario(sb: Sandbox, *, timeout: float = DEFAULT_TIMEOUT) -> Scenario:
    return Scenario(sb, timeout=timeout)
