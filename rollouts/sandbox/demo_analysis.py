"""The analysis acts of `rollouts demo`: Prometheus decides, nobody runs promote or abort.
Install `examples/demo-analysis.yaml` (a canary whose second step is an analysis of the canary
Service's success rate), release a good image that the analysis promotes with no human action,
and a bad one (30% errors) whose failed analysis makes the controller roll it back by itself;
print the failing measurement and the Rollout's `status.message`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from rollouts.sandbox.cluster import EXAMPLES_DIR
from rollouts.sandbox.demo_snapshot import AnalysisRow, MeasurementRow
from rollouts.sandbox.demo_view import measurement_mark, phase_text, print_view

if TYPE_CHECKING:
    from rollouts.sandbox.demo import Demo

NAME = "api"
MANIFEST = EXAMPLES_DIR / "demo-analysis.yaml"
FIRST_IMAGE = "example/api:1.0"
GOOD_IMAGE = "example/api:2.0"
BAD_IMAGE = "example/api:3.0-bad"  # "bad": the simulated app answers 30% of requests with 5xx
SUCCESS_RATE = 0.95  # the manifest's success-rate arg
MEASUREMENTS = 3  # ...and its count


def analysis_act(demo: Demo, number: int) -> None:
    demo.name = NAME
    demo.act(f"{number}. Install {MANIFEST.parent.name}/{MANIFEST.name}: "
             "Prometheus decides")
    demo.say(f"A Rollout {NAME} of 4 {FIRST_IMAGE} pods. "
             "Steps: setWeight 50, then analysis.")
    demo.say(f"Its AnalysisTemplate asks Prometheus {MEASUREMENTS} times, 2s apart, for "
             "the share of non-5xx")
    demo.say(f"responses through Service {NAME}-canary; one value below "
             f"{SUCCESS_RATE:.0%} fails the run.")
    demo.say("No pause for a human: Successful completes the rollout, Failed aborts it.")
    demo.sandbox.apply(MANIFEST)
    first = demo.first_revision_healthy(f"{NAME}'s first revision", FIRST_IMAGE)
    demo.show(first)
    demo.breathe()

    demo.act(f"{number + 1}. Release {GOOD_IMAGE}: the analysis promotes it")
    demo.say("No `rollouts promote` here: a Successful AnalysisRun is the go-ahead.")
    new, old = release_analysed(demo, GOOD_IMAGE)
    done = demo.wait(
        f"{GOOD_IMAGE} to be Healthy and stable",
        lambda s: s.phase == "Healthy" and s.stable_hash == new
        and s.sizes(new) == (4, 4) and s.sizes(old) == (0, 0),
        seen=lambda s: f"{s.phase}, {run_summary(s.run)}, stable "
                       f"{s.sizes(new)}, old {s.sizes(old)}")
    run = done.run
    print_run(demo, run)
    demo.expect(f"AnalysisRun Successful: {MEASUREMENTS} measurements, all Successful",
                ("Successful", ["Successful"] * MEASUREMENTS),
                (run.phase, [m.phase for m in run.measurements]) if run else "no run")
    demo.expect(f"Healthy on {GOOD_IMAGE} with no promote: 4/4 pods, "
                f"{FIRST_IMAGE} at 0",
                ((4, 4), (0, 0)), (done.sizes(new), done.sizes(old)))
    demo.show(done)
    demo.breathe()

    demo.act(f"{number + 2}. Release {BAD_IMAGE}: the analysis rolls it back")
    demo.say("Its pods answer 30% of requests with a 5xx. No `rollouts abort` here:")
    demo.say("a Failed AnalysisRun is enough.")
    bad, stable = release_analysed(demo, BAD_IMAGE)
    canary_service, stable_service = (svc for svc, _ in demo._snap().services)
    aborted = demo.wait(
        "Degraded with stable at full size",
        lambda s: s.phase == "Degraded" and s.aborted and s.sizes(stable) == (4, 4)
        and s.sizes(bad) == (0, 0) and s.service(canary_service) == stable
        and s.canary_weight in (0, None),
        seen=lambda s: f"{s.phase}, {run_summary(s.run)}, stable "
                       f"{s.sizes(stable)}, canary {s.sizes(bad)}, "
                       f"{canary_service} -> {s.service(canary_service)}")
    run = aborted.run
    failing = run.first("Failed") if run else None
    print_failure(demo, run, failing, aborted.message)
    value = failing.number_value if failing else None
    demo.expect_that(
        f"AnalysisRun Failed: a measurement below {SUCCESS_RATE}",
        run is not None and run.phase == "Failed" and value is not None
        and value < SUCCESS_RATE,
        f"a Failed run with a success-rate below {SUCCESS_RATE}",
        run_summary(run))
    demo.expect("Degraded and aborted by the controller, no abort command",
                ("Degraded", True), (aborted.phase, aborted.aborted))
    demo.expect(f"stable {GOOD_IMAGE} back at 4/4 pods", (4, 4), aborted.sizes(stable))
    demo.expect(f"canary {BAD_IMAGE} scaled to 0", (0, 0), aborted.sizes(bad))
    demo.expect(f"{canary_service} and {stable_service} pinned to stable {stable}",
                (stable, stable),
                (aborted.service(canary_service), aborted.service(stable_service)))
    names = [str(run.name) if run else "(no run)", '"success-rate"']
    demo.expect_that("status.message names the failed AnalysisRun and metric",
                     all(n in aborted.message for n in names),
                     f"a message naming {' and '.join(names)}",
                     repr(aborted.message))
    demo.show(aborted)


def release_analysed(demo: Demo, image: str) -> tuple[str, str]:
    """Set the image and check the canary at 50% with its AnalysisRun under way."""
    demo.say(f"The pod template's image changes to {image}: a new revision.")
    demo.sandbox.set_image(demo.name, image)
    running = demo.wait(
        "step 2/2 (the analysis) under way",
        lambda s: s.up_to_date and s.in_flight and s.step == 1 and s.run is not None
        and not s.run.done and s.sizes(s.current_hash) == (2, 2),
        seen=lambda s: f"{s.phase} at step {s.step}, {run_summary(s.run)}")
    new, old = running.current_hash, running.stable_hash
    demo.expect(f"50%: 2 pods of {image}, 2 stable; step 2's AnalysisRun started",
                (image, (2, 2), (2, 2), "step"),
                (demo._rs_summary(running, new)[0], running.sizes(new),
                 running.sizes(old), running.run.kind if running.run else "no run"))
    demo.show(running)
    return str(new), str(old)


def print_run(demo: Demo, run: AnalysisRow | None) -> None:
    """The run's measurements as the controller recorded them: value and phase each."""
    if run is None:
        return
    demo.out.print(Text.assemble(("AnalysisRun ", "bold"), (run.name, "bold"), "  ",
                                 phase_text(run.phase)), soft_wrap=True)
    table = Table(box=None, pad_edge=False, show_header=True, header_style="dim",
                  padding=(0, 2, 0, 0))
    for column in ("  METRIC", "#", "VALUE", "PHASE"):
        table.add_column(column, no_wrap=True)
    for taken in run.measurements:
        mark, style = measurement_mark(taken.phase, demo.marks)
        table.add_row(f"  {taken.metric}", str(taken.number), taken.value,
                      Text.assemble((mark, style), " ", phase_text(taken.phase)))
    print_view(demo.out, table)


def print_failure(demo: Demo, run: AnalysisRow | None, failing: MeasurementRow | None,
                  message: str) -> None:
    """The measurement that failed the run, and what the Rollout says about it."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    if failing is not None:
        demo.out.print(Text("The failing measurement, and the Rollout's status.message:",
                            style="bold"))
        grid.add_row("", "metric", f"{failing.metric} (#{failing.number} of AnalysisRun "
                                   f"{run.name if run else '?'})")
        grid.add_row("", "value", failing.value)
        grid.add_row("", "failureCondition",
                     Text.assemble(failing.condition, "  (true: ", phase_text(failing.phase),
                                   ")"))
    else:
        demo.out.print(Text("No failed measurement; the Rollout's status.message:",
                            style="bold"))
    grid.add_row("", "status.message", Text(message or "-"))
    print_view(demo.out, grid)


def run_summary(run: AnalysisRow | None) -> str:
    if run is None:
        return "no AnalysisRun"
    values = ", ".join(f"{m.short_value} {m.phase}" for m in run.measurements)
    return f"AnalysisRun {run.phase}" + (f" ({values})" if values else "") + (
        f": {run.message}" if run.message else "")
