"""The first acts of `rollouts demo`: a canary walked through its steps by hand. Install
`examples/canary.yaml`, release a new image and watch it go 25% -> timed pause -> 50% ->
paused, promote it (`rollouts promote`), then release another and abort it at its first pause
(`rollouts abort`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rollouts.sandbox.cluster import EXAMPLES_DIR

if TYPE_CHECKING:
    from rollouts.sandbox.demo import Demo

NAME = "web"
MANIFEST = EXAMPLES_DIR / "canary.yaml"
FIRST_IMAGE = "example/web:1.0"
PROMOTED_IMAGE = "example/web:2.0"
ABORTED_IMAGE = "example/web:3.0"


def canary_act(demo: Demo, number: int) -> None:
    demo.act(f"{number}. Install {MANIFEST.parent.name}/{MANIFEST.name}")
    demo.say("A Rollout of 4 example/web:1.0 pods; Services web-canary and web-stable.")
    demo.say("Steps: setWeight 25, pause 2s, setWeight 50, pause until promoted.")
    demo.sandbox.apply(MANIFEST)
    first = demo.first_revision_healthy("the first revision", FIRST_IMAGE)
    demo.show(first)
    demo.breathe()

    release(demo, PROMOTED_IMAGE, f"{number + 1}. Release {PROMOTED_IMAGE} and promote it")
    new, old = demo._hashes()
    demo.say("The timed pause ends by itself; the next step takes the canary to 50%.")
    half = demo.wait("step 4/4 (paused until promoted)",
                     lambda s: s.phase == "Paused" and s.step == 3)
    demo.expect("50%: canary 50 / stable 50, 2 pods each",
                (50, 50, (2, 2), (2, 2)),
                (half.canary_weight, half.stable_weight, half.sizes(new), half.sizes(old)))
    demo.show(half)
    demo.breathe()
    result = demo.run_operation("promote")
    demo.expect("promote decided at the last step (step 4/4)", 3,
                result.before.get("currentStepIndex"))
    done = demo.wait("example/web:2.0 to be Healthy and stable",
                     lambda s: s.phase == "Healthy" and s.stable_hash == new
                     and s.sizes(new) == (4, 4) and s.sizes(old) == (0, 0))
    demo.expect("Healthy on example/web:2.0: 4/4 pods, example/web:1.0 at 0",
                ((4, 4), (0, 0)), (done.sizes(new), done.sizes(old)))
    demo.expect("both Services select the new revision", [new, new],
                [pinned for _, pinned in done.services])
    demo.show(done)
    demo.breathe()

    release(demo, ABORTED_IMAGE, f"{number + 2}. Release {ABORTED_IMAGE} and abort it")
    bad, stable = demo._hashes()
    result = demo.run_operation("abort")
    demo.expect("abort decided at the first pause (step 2/4)", 1,
                result.before.get("currentStepIndex"))
    canary_service, stable_service = (svc for svc, _ in demo._snap().services)
    aborted = demo.wait(
        "Degraded with stable at full size",
        lambda s: s.phase == "Degraded" and s.sizes(stable) == (4, 4)
        and s.sizes(bad) == (0, 0) and s.service(canary_service) == stable
        and s.canary_weight in (0, None),  # the status caught up: one state in the box
        seen=lambda s: f"{s.phase}, stable {s.sizes(stable)}, canary {s.sizes(bad)}, "
                       f"{canary_service} -> {s.service(canary_service)}")
    demo.expect("Degraded and marked aborted", ("Degraded", True),
                (aborted.phase, aborted.aborted))
    demo.expect("stable example/web:2.0 back at 4/4 pods", (4, 4), aborted.sizes(stable))
    demo.expect("canary example/web:3.0 scaled to 0", (0, 0), aborted.sizes(bad))
    demo.expect(f"{canary_service} and {stable_service} pinned to stable {stable}",
                (stable, stable),
                (aborted.service(canary_service), aborted.service(stable_service)))
    demo.show(aborted)


def release(demo: Demo, image: str, title: str) -> None:
    """Set the image and check the canary at 25% and in its timed pause."""
    demo.act(title)
    demo.say(f"The pod template's image changes to {image}: a new revision.")
    if not demo.legend_shown:
        demo.say(f"Log lines: time, phase, step, canary weight ({demo.marks.arrow} desired), "
                 "pods up/wanted.")
        demo.legend_shown = True
    demo.sandbox.set_image(NAME, image)
    paused = demo.wait("step 2/4 (the timed pause)",
                       lambda s: s.up_to_date and s.phase == "Paused" and s.step == 1)
    new, old = paused.current_hash, paused.stable_hash
    demo.expect(f"25%: 1 pod of {image}, 3 of the stable revision, weights 25/75",
                (image, (1, 1), (3, 3), 25, 75),
                (demo._rs_summary(paused, new)[0], paused.sizes(new), paused.sizes(old),
                 paused.canary_weight, paused.stable_weight))
    demo.show(paused)
