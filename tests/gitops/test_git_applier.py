"""The controller under a GitOps tool that re-applies Git every second by server-side apply
with force (as Flux does), in the sandbox: a real Git repository, a release commit, and a
`git revert` that rolls back at once.

With the canary and stable Services declared without `spec.selector` (the documented
pattern, docs/gitops.md) nothing fights: the Rollout's generation moves only with commits and
no write ever leaves a Service without its `rollouts-pod-template-hash` key. With selectors
in Git, the fight of issue 8 is reproduced (every apply takes the atomic selector and drops
the key), and the controller says who does it.
"""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from rollouts.planner.selector_contest import CONDITION, FIELD_MANAGER
from tests.e2e.conftest import CountingSandbox, cluster, sandbox
from tests.gitops.applier import FIELD_MANAGER as GITOPS_MANAGER
from tests.gitops.applier import Applier, GitRepo

__all__ = ["cluster", "sandbox"]  # the e2e fixtures: a sandbox with the real controller

HASH = "rollouts-pod-template-hash"
SERVICES = ("web-canary", "web-stable")


def manifests(image: str, *, selectors: bool) -> str:
    service = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
{selector}  ports: [{{port: 80, targetPort: 8080}}]
"""
    selector = "  selector: {app: web}\n" if selectors else ""
    rollout = f"""\
apiVersion: rollouts.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
  strategy:
    canary:
      canaryService: web-canary
      stableService: web-stable
      steps:
        - setWeight: 50
        - pause: {{}}
"""
    return "---\n".join([*(service.format(name=n, selector=selector) for n in SERVICES),
                         rollout])


def writes(sb: CountingSandbox, plural: str) -> list[dict[str, Any]]:
    return [obj for _, kind, event, obj in sb.emulator.write_history()
            if kind == plural and event != "DELETED"]


def selectors_losing_the_hash(sb: CountingSandbox) -> list[tuple[str, dict[str, str]]]:
    """Every Service write that left a Service without the hash key after it had one."""
    pinned: set[str] = set()
    lost = []
    for service in writes(sb, "services"):
        name = service["metadata"]["name"]
        selector = service["spec"].get("selector") or {}
        if HASH in selector:
            pinned.add(name)
        elif name in pinned:
            lost.append((name, selector))
    return lost


def wait_applied(sb: CountingSandbox, applier: Applier, passes: int) -> None:
    """Let the applier re-apply HEAD `passes` more times."""
    target = len(applier.applied) + passes
    sb.wait_for(f"{passes} more applies", lambda: len(applier.applied) >= target, timeout=20)


def test_selectorless_services_never_fight_through_release_and_revert(
        cluster: CountingSandbox, tmp_path: pathlib.Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    first = repo.commit({"web.yaml": manifests("app:1", selectors=False)}, "web app:1")
    with Applier(repo, cluster.emulator, cluster.namespace, interval=1.0) as applier:
        stable = cluster.wait_phase("web", "Healthy", timeout=30)["stableRS"]
        release = repo.commit({"web.yaml": manifests("app:2", selectors=False)}, "web app:2")
        paused = cluster.wait_phase("web", "Paused", step=1, timeout=30)
        assert paused["currentPodHash"] != stable
        wait_applied(cluster, applier, 2)  # Git re-applied while the release is paused
        revert = repo.revert_head()
        # The revert brings the stable revision back at once: the release waits at an
        # indefinite pause that nobody promotes, so reaching Healthy means no step was walked.
        healthy = cluster.wait_phase("web", "Healthy", timeout=60)
        assert healthy["stableRS"] == stable
        wait_applied(cluster, applier, 2)
    assert repo.manifests(revert) == repo.manifests(first)

    # The Rollout's generation moved only with the commits: 1, the release 2, the revert 3,
    # though Git was applied many more times.
    generations = [r["metadata"]["generation"] for r in writes(cluster, "rollouts")]
    assert generations == sorted(generations)
    assert sorted(set(generations)) == [1, 2, 3]
    assert set(applier.applied) == {first, release, revert}
    assert len(applier.applied) >= 6

    # No write ever left a Service without its hash key once the controller had set it.
    assert selectors_losing_the_hash(cluster) == []
    for name in SERVICES:
        service = cluster.emulator.get_object("", "v1", "services", cluster.namespace, name)
        assert service is not None
        assert service["spec"]["selector"] == {"app": "web", HASH: stable}
        owners = {e["manager"]: e["fieldsV1"] for e in service["metadata"]["managedFields"]}
        assert owners[FIELD_MANAGER] == {"f:spec": {"f:selector": {}}}
        assert "f:selector" not in owners[GITOPS_MANAGER]["f:spec"]
    assert cluster.status("web").get("conditions") and not any(
        c["type"] == CONDITION for c in cluster.status("web")["conditions"])


@pytest.mark.parametrize("interval", [1.0])
def test_selectors_in_git_fight_and_the_controller_names_the_taker(
        cluster: CountingSandbox, tmp_path: pathlib.Path, interval: float) -> None:
    """The anti-pattern, reproduced: each apply takes the atomic selector whole."""
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"web.yaml": manifests("app:1", selectors=True)}, "web app:1")
    with Applier(repo, cluster.emulator, cluster.namespace, interval=interval):
        cluster.wait_phase("web", "Healthy", timeout=30)

        def contested() -> dict[str, Any] | None:
            return next((c for c in cluster.status("web").get("conditions") or ()
                         if c["type"] == CONDITION and c["status"] == "True"), None)

        condition = cluster.wait_for("the contest condition", contested, timeout=30)
    lost = selectors_losing_the_hash(cluster)
    assert lost and all(selector == {"app": "web"} for _, selector in lost)
    assert f'"{GITOPS_MANAGER}"' in condition["message"]
    assert "without spec.selector" in condition["message"]
    events = [e for e in cluster.events("web") if e["reason"] == CONDITION]
    assert len(events) == 1 and events[0]["type"] == "Warning"
    # The Event says what the condition said when it turned True (the count goes on).
    assert events[0]["message"].split(" times ")[1] == condition["message"].split(" times ")[1]
    assert f'"{GITOPS_MANAGER}"' in events[0]["message"]
    # ...and it keeps repairing: the Services end up with their hash key again.
    stable = cluster.status("web")["stableRS"]
    for name in SERVICES:
        cluster.wait_for(f"{name} repaired",
                         lambda n=name: cluster.service_selector(n).get(HASH) == stable)


def test_create_services_makes_and_owns_the_services_git_does_not_declare(
        cluster: CountingSandbox, tmp_path: pathlib.Path) -> None:
    """spec.strategy.createServices: only the Rollout in Git; the controller creates the
    Services it names, owned by the Rollout, and they go with it."""
    rollout = manifests("app:1", selectors=False).split("---\n")[-1]
    rollout = rollout.replace("  strategy:\n", "  strategy:\n    createServices: true\n")
    rollout = rollout.replace("          image: app:1\n",
                              "          image: app:1\n"
                              "          ports: [{name: http, containerPort: 8080}]\n")
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"web.yaml": rollout}, "web app:1, Services made by the controller")
    with Applier(repo, cluster.emulator, cluster.namespace, interval=1.0) as applier:
        stable = cluster.wait_phase("web", "Healthy", timeout=30)["stableRS"]
        wait_applied(cluster, applier, 1)
    uid = cluster.rollout("web")["metadata"]["uid"]
    for name in SERVICES:
        service = cluster.emulator.get_object("", "v1", "services", cluster.namespace, name)
        assert service is not None
        assert [o["uid"] for o in service["metadata"]["ownerReferences"]] == [uid]
        assert service["spec"]["selector"] == {"app": "web", HASH: stable}
        assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
            (8080, 8080)]
    cluster.emulator.delete_object("rollouts.dev", "v1alpha1", "rollouts", cluster.namespace,
                                   "web")
    cluster.wait_for("the owned Services to go with the Rollout", lambda: all(
        cluster.emulator.get_object("", "v1", "services", cluster.namespace, n) is None
        for n in SERVICES))
