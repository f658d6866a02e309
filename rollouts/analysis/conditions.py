"""Analysis conditions: compile them (the `expr` package) and judge one measurement.

The language itself lives in `rollouts.analysis.expr` (lexer, parser, evaluator, functions);
this module keeps the names its callers import and the rules that turn a condition's verdict
into a measurement phase.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal, NamedTuple

from rollouts.analysis.expr import (
    FUNCTION_NAMES,
    MAX_BUILT,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_NODES,
    MAX_STEPS,
    Condition,
    EvaluationError,
    check_condition,
    compile_condition,
)

__all__ = [
    "FUNCTION_NAMES",
    "MAX_BUILT",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_NODES",
    "MAX_STEPS",
    "Condition",
    "EvaluationError",
    "Outcome",
    "Phase",
    "check_condition",
    "compile_condition",
    "measurement_outcome",
    "measurement_phase",
]


Phase = Literal["Successful", "Failed", "Inconclusive", "Error"]


class Outcome(NamedTuple):
    phase: Phase
    message: str | None


def _is_empty(result: object) -> bool:
    if isinstance(result, float):
        return math.isnan(result)
    return result is None or (isinstance(result, (list, tuple, Mapping, str)) and len(result) == 0)


def _try(condition: Condition | None, result: object) -> tuple[bool | None, EvaluationError | None]:
    if condition is None:
        return None, None
    try:
        return condition.evaluate(result), None
    except EvaluationError as exc:
        return None, exc


def measurement_outcome(
    success: Condition | None, failure: Condition | None, result: object
) -> Outcome:
    """The phase of one measurement and why.

    - the failureCondition holds -> Failed (also when both hold, or the other errors);
    - a condition that cannot be evaluated -> Error, with the reason;
    - neither holds -> Inconclusive when both are given;
    - only one given -> the other is its negation;
    - none given -> Successful;
    - no data (nil, NaN, empty list/map/string) is never Successful: it can be Failed or
      Error, otherwise it is Inconclusive.
    """
    succeeded, success_error = _try(success, result)
    failed, failure_error = _try(failure, result)
    if failed:
        # A measurement that meets its failureCondition has failed, whatever else went wrong.
        return Outcome("Failed", None)
    error = failure_error or success_error
    if error is not None:
        prefix = "no data: " if _is_empty(result) else ""
        return Outcome("Error", f"{prefix}{error}")
    if succeeded is None and failed is None:
        phase: Phase = "Successful"
    elif failed is None:
        phase = "Successful" if succeeded else "Failed"
    elif succeeded is None:
        phase = "Failed" if failed else "Successful"
    elif failed:
        phase = "Failed"
    elif succeeded:
        phase = "Successful"
    else:
        phase = "Inconclusive"
    if phase == "Successful" and _is_empty(result):
        return Outcome("Inconclusive", "no data: the query returned an empty result")
    return Outcome(phase, None)


def measurement_phase(
    success: Condition | None, failure: Condition | None, result: object
) -> Phase:
    """Just the phase of `measurement_outcome`."""
    return measurement_outcome(success, failure, result).phase
