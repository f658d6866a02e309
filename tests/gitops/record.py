"""Record Rollout objects as the real controller leaves them, for the GitOps script tests.

    PYTHONPATH=$PWD python3 -m tests.gitops.record

runs the sandbox (API emulator, kubelet, controller), takes canary and blue-green Rollouts
through the states Argo CD and Flux must understand, and writes each object as JSON under
tests/gitops/data/. The tests read those files; re-run this when the status shape changes.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from rollouts.sandbox.cluster import Sandbox
from tests.e2e.dsl import (
    abort,
    blue_green,
    canary,
    cli,
    degraded,
    healthy,
    image,
    pause,
    paused,
    rollout,
    scenario,
    set_weight,
)

DATA = pathlib.Path(__file__).resolve().parent / "data"
_VOLATILE = ("managedFields", "uid", "resourceVersion", "creationTimestamp", "finalizers")


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    for key in _VOLATILE:
        obj["metadata"].pop(key, None)
    return obj


def main() -> None:
    DATA.mkdir(exist_ok=True)
    with Sandbox(ready_delay=0.05, requeue_floor=0.1) as sb:
        sb.start_controller()

        def save(name: str, what: str) -> None:
            (DATA / f"{what}.json").write_text(
                json.dumps(_clean(sb.rollout(name)), indent=2, sort_keys=True) + "\n")

        s = scenario(sb).given(rollout("web", canary(set_weight(50), pause(), set_weight(75),
                                                      pause()), replicas=2))
        save("web", "canary-healthy")
        s.when(image("web:2")).then(paused(at_step=1))
        save("web", "canary-paused-at-step")
        s.when(cli("pause")).then(paused(at_step=1))
        sb.wait_for("the user pause", lambda: any(
            p.get("reason") == "PausedByUser"
            for p in sb.status("web").get("pauseConditions") or []))
        save("web", "canary-paused-by-user")
        s.when(cli("resume"), cli("promote")).then(paused(at_step=3))
        save("web", "canary-paused-at-last-pause")
        s.when(abort()).then(degraded())
        save("web", "canary-aborted")

        b = scenario(sb).given(rollout("bg", blue_green(auto_promotion=False), replicas=2))
        save("bg", "bluegreen-healthy")
        b.when(image("bg:2")).then(paused())
        sb.wait_for("the blue-green pause", lambda: sb.status("bg").get("pauseConditions"))
        save("bg", "bluegreen-paused")
        b.when(cli("promote")).then(healthy())
        save("bg", "bluegreen-promoted")


if __name__ == "__main__":
    main()
