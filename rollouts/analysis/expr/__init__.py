"""The condition language of analysis metrics: expr-lang, as Argo Rollouts evaluates it.

`successCondition` / `failureCondition` text is compiled once (`compile_condition`) into an
immutable `Condition` and evaluated against each measurement's `result`. Input is never
handed to Python's eval/exec/compile: a hand-written scanner (lexer) and Pratt parser
(parser) build our own tree (nodes), which a small interpreter (evaluate) walks with a fixed
table of functions (functions). Work is bounded (budget): text length, tree depth and size,
literal sizes, int64 integers, evaluation steps and the size of every value built.

The supported language is documented in docs/api.md ("The condition language").
"""

from __future__ import annotations

from dataclasses import dataclass

from rollouts.analysis.expr.budget import (
    MAX_BUILT,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_NODES,
    MAX_STEPS,
    EvaluationError,
    type_name,
)
from rollouts.analysis.expr.evaluate import evaluate
from rollouts.analysis.expr.functions import FUNCTION_NAMES
from rollouts.analysis.expr.nodes import Node
from rollouts.analysis.expr.parser import Parser
from rollouts.errors import ConditionSyntaxError

__all__ = [
    "FUNCTION_NAMES",
    "MAX_BUILT",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_NODES",
    "MAX_STEPS",
    "Condition",
    "ConditionSyntaxError",
    "EvaluationError",
    "check_condition",
    "compile_condition",
]


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition; immutable and safe to share."""

    text: str
    tree: Node

    def value(self, result: object) -> object:
        """What the expression gives for this result (any type); EvaluationError if nothing."""
        return evaluate(self.text, self.tree, result)

    def evaluate(self, result: object) -> bool:
        """True/False for this result; EvaluationError if it cannot be decided."""
        value = self.value(result)
        if not isinstance(value, bool):
            raise EvaluationError(
                self.text, 0, f"condition must give a boolean, got {type_name(value)}"
            )
        return value

    def __str__(self) -> str:
        return self.text


def compile_condition(text: str) -> Condition:
    """Parse `text`; ConditionSyntaxError (with a 0-based position) if it is not valid."""
    if not isinstance(text, str):
        raise ConditionSyntaxError(repr(text)[:80], 0, "a condition must be a string")
    if len(text) > MAX_LENGTH:
        raise ConditionSyntaxError(
            text[:80] + "...", MAX_LENGTH, f"condition longer than {MAX_LENGTH} characters"
        )
    if not text.strip():
        raise ConditionSyntaxError(text, 0, "empty condition")
    try:
        tree = Parser(text).parse()
    except RecursionError:
        # Only when the caller's own stack is already deep: still a clean, typed error.
        raise ConditionSyntaxError(text, 0, "expression nested too deeply") from None
    return Condition(text, tree)


def check_condition(text: str) -> ConditionSyntaxError | None:
    """The syntax error in `text`, or None when it compiles."""
    try:
        compile_condition(text)
    except ConditionSyntaxError as exc:
        return exc
    return None
