"""The condition language against a table of expressions and the values expr-lang gives.

The table (data/expr_conformance.yaml) is grouped by topic; each case names an expression,
the expected value (types matter: an int is not a float, a bool is not a number) or the
error, and optionally the `result` it is evaluated against.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import pytest
import yaml

from rollouts.analysis.expr import Condition, EvaluationError, compile_condition
from rollouts.errors import ConditionSyntaxError

TABLE = pathlib.Path(__file__).parent / "data" / "expr_conformance.yaml"


def _cases() -> list[Any]:
    groups = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    cases = []
    for group, entries in groups.items():
        for n, entry in enumerate(entries):
            text, expected, *rest = entry
            result = rest[0] if rest else None
            cases.append(pytest.param(text, expected, result, id=f"{group}-{n}:{text[:40]}"))
    return cases


def same(actual: object, expected: object) -> bool:
    """Equal in value and in type: 1 is not 1.0, true is not 1, NaN equals NaN."""
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(actual, float) and math.isnan(actual)
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, list):
        assert isinstance(actual, list)
        return len(actual) == len(expected) and all(map(same, actual, expected))
    if isinstance(expected, dict):
        assert isinstance(actual, dict)
        return actual.keys() == expected.keys() and all(same(actual[k], expected[k])
                                                         for k in expected)
    return actual == expected


def test_the_table_is_large_and_well_formed() -> None:
    cases = _cases()
    assert len(cases) >= 300
    texts = [(c.values[0], repr(c.values[2])) for c in cases]
    assert len(texts) == len(set(texts)), "duplicate cases"


@pytest.mark.parametrize(("text", "expected", "result"), _cases())
def test_conformance(text: str, expected: object, result: object) -> None:
    if isinstance(expected, dict) and "syntax" in expected:
        with pytest.raises(ConditionSyntaxError) as syntax:
            compile_condition(text)
        assert expected["syntax"] in syntax.value.message
        return
    condition: Condition = compile_condition(text)
    if isinstance(expected, dict) and "error" in expected:
        with pytest.raises(EvaluationError) as info:
            condition.value(result)
        assert expected["error"] in info.value.message
        assert not isinstance(info.value, ConditionSyntaxError)
        return
    actual = condition.value(result)
    assert same(actual, expected), f"{text!r} gave {actual!r}, expected {expected!r}"
