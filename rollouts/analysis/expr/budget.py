"""Limits, the evaluator's error type and the per-evaluation budget.

Every evaluation carries a `Budget`: a count of steps (nodes visited, elements scanned) and a
count of units built (characters of new strings, elements of new lists and ranges). Both are
charged *before* the work is done, so an expression that would build a gigabyte or loop for
seconds stops with an EvaluationError after a bounded amount of work.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from rollouts.errors import RolloutsError

MAX_LENGTH: Final = 4096  # characters of condition text
MAX_DEPTH: Final = 50  # conservative: each level costs several Python frames
MAX_NODES: Final = 1000
MAX_STEPS: Final = 100_000
MAX_BUILT: Final = 1_000_000  # characters + list elements built by one evaluation
MAX_STRING_LITERAL: Final = 1024
MAX_NUMBER_LITERAL: Final = 40  # characters
MAX_REGEX: Final = 1024  # characters of a `matches` pattern
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1


class EvaluationError(RolloutsError):
    """A condition parsed but could not be evaluated against this result.

    The assessor counts it as a measurement Error, never as a success.
    """

    def __init__(self, expression: str, position: int, message: str) -> None:
        super().__init__(f"{message} at position {position} in {expression!r}")
        self.expression = expression
        self.position = position
        self.message = message


class Budget:
    """The work one evaluation may still do; one instance per evaluation."""

    __slots__ = ("built", "steps", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.steps = 0
        self.built = 0

    def fail(self, pos: int, message: str) -> EvaluationError:
        return EvaluationError(self.text, pos, message)

    def step(self, pos: int, n: int = 1) -> None:
        self.steps += n
        if self.steps > MAX_STEPS:
            raise self.fail(pos, f"evaluation budget exceeded ({MAX_STEPS} steps)")

    def build(self, pos: int, size: int) -> None:
        """Charge `size` units (characters or elements) of a value about to be built."""
        self.built += size
        if self.built > MAX_BUILT:
            raise self.fail(
                pos, f"values too large (more than {MAX_BUILT} characters or elements built)"
            )
        self.step(pos, size // 64)  # building also takes time, though far less per unit


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_list(value: object) -> bool:
    return isinstance(value, (list, tuple))


def type_name(value: object) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "map"
    return f"unsupported value ({type(value).__name__})"


def number(budget: Budget, pos: int, value: object, what: str) -> int | float:
    """`value` as an operand of arithmetic: a number, and an int within int64.

    Results can hold integers of any size (JSON from the web provider); mixing one with a
    float would raise Python's OverflowError, so they are refused here with our own error.
    """
    if not is_number(value):
        raise budget.fail(pos, f"{what} needs a number, got {type_name(value)}")
    assert isinstance(value, (int, float))
    if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        raise budget.fail(pos, f"{what}: integer out of range (int64)")
    return value


def checked_int(budget: Budget, pos: int, value: int) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise budget.fail(pos, "integer overflow (int64)")
    return value


def is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)
