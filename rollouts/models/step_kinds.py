"""Which fields a canary step may combine (Argo Rollouts' rule), read by the step model's
validator, the CRD's CEL rules (models/cel_rules.py) and the planner's order of handlers."""

from __future__ import annotations

# The fields a canary step can have, as written in manifests, in the order they run within
# one step (planner/canary.py): the canary's size and the managed routes are set up first,
# then the step's one action. As in Argo Rollouts, setWeight, pause, analysis and experiment
# exclude each other (a step plugin too: it decides alone when its step is done), while
# setCanaryScale, setHeaderRoute and setMirrorRoute may go with any of them. The model's
# validator and the CRD's CEL rules (models/cel_rules.py) read these lists.
STEP_KINDS = ("setCanaryScale", "setHeaderRoute", "setMirrorRoute", "setWeight", "pause",
              "analysis", "experiment", "plugin")
STEP_ACTIONS = ("setWeight", "pause", "analysis", "experiment", "plugin")
NO_STEP_KIND = "a step needs at least one of " + ", ".join(STEP_KINDS)
TWO_STEP_ACTIONS = ("a step has at most one of " + ", ".join(STEP_ACTIONS) + " (setCanaryScale, "
                    "setHeaderRoute and setMirrorRoute may go with any of them)")


def step_kind_problem(given: list[str]) -> str | None:
    """Why a step with these fields set is refused (None: it is not).

    E.g. [] -> needs at least one; [setCanaryScale, setHeaderRoute, pause] -> None;
    [setWeight, pause] -> "setWeight and pause cannot be combined in one step: ...".
    """
    if not given:
        return NO_STEP_KIND
    actions = [kind for kind in given if kind in STEP_ACTIONS]
    if len(actions) > 1:
        return f"{' and '.join(actions)} cannot be combined in one step: {TWO_STEP_ACTIONS}"
    return None
