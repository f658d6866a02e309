"""Inputs found from outside that once escaped the evaluator's bounds: each is a regression.

Everything here must end in the evaluator's own errors (ConditionSyntaxError when parsing,
EvaluationError when evaluating), never a bare Python exception, a hang or a huge allocation.
Memory is measured with tracemalloc (deterministic); no test looks at the wall clock.
"""

from __future__ import annotations

import tracemalloc

import pytest

from rollouts.analysis.expr import (
    MAX_BUILT,
    MAX_STEPS,
    EvaluationError,
    check_condition,
    compile_condition,
)
from rollouts.errors import ConditionSyntaxError

HUGE_INT = 10**400  # too large for a float: float(HUGE_INT) raises OverflowError
NAN = float("nan")
INF = float("inf")


@pytest.mark.parametrize(
    "text",
    [
        "result / 2 > 0",
        "asFloat(result) > 0",
        "asInt(result) > 0",
        "float(result) > 0",
        "int(result) > 0",
        "result > 0.5",
        "result + 1 > 0",
        "result * 0.5 > 0",
        "-result < 0",
        "result % 2 == 0",
        "abs(result) > 0",
        "round(result) > 0",
        "isNaN(result)",
        "isInf(result)",
        "string(result) == ''",
        "min([result, 1]) > 0",
        "mean([result]) > 0",
        "median([result, 1]) > 0",
        "sum([result, 0.5]) > 0",
        "result..3 == []",
        "1..result == []",
    ],
)
def test_integer_too_large_for_a_float_is_an_evaluation_error(text: str) -> None:
    for result in (HUGE_INT, -HUGE_INT):
        with pytest.raises(EvaluationError, match="out of range"):
            compile_condition(text).value(result)


def test_list_element_too_large_for_a_float() -> None:
    with pytest.raises(EvaluationError, match="out of range"):
        compile_condition("result[0] + 0.5 > 0").evaluate([HUGE_INT])
    # Equality needs no conversion: it stays exact.
    assert compile_condition("result == result").evaluate(HUGE_INT)


@pytest.mark.parametrize(
    "text",
    [
        "len([result + result, result + result, result + result]) > 0",
        "len(result + result) > 0",
        "upper(result) == ''",
        "lower(result + 'x') == ''",
        "trim(result) == ''",
        "string([result, result]) == ''",
        "map([1, 2, 3], result + result) == []",
    ],
)
def test_built_values_are_bounded_in_size(text: str) -> None:
    big = "x" * (MAX_BUILT + 1)
    tracemalloc.start()
    try:
        with pytest.raises(EvaluationError, match="too large"):
            compile_condition(text).value(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Refused before building: far below the ~950 MB the unbounded version reached.
    assert peak < 20 * 2**20


def test_large_lists_and_ranges_are_bounded() -> None:
    items = list(range(MAX_BUILT // 2 + 1))
    for text in ("len(map(result, #)) > 0", "len(filter(result, true)) > 0",
                 "string(result) == ''", "len(0..10000000) > 0"):
        with pytest.raises(EvaluationError):
            compile_condition(text).value(items)
    # A membership test on a range does not build it.
    assert compile_condition("result in 0..9223372036854775807").evaluate(5)


def test_step_budget_bounds_nested_loops() -> None:
    big = list(range(10_000))
    with pytest.raises(EvaluationError, match="budget"):
        compile_condition("all(result, all(result, # >= 0))").evaluate(big)
    with pytest.raises(EvaluationError, match="budget"):
        compile_condition("count(result, # in result) > 0").evaluate(big[:2000])
    assert compile_condition("all(result, # >= 0)").evaluate(big[: MAX_STEPS // 10])


def test_trim_cutset_is_bounded() -> None:
    with pytest.raises(EvaluationError, match="to trim"):
        compile_condition("trim(result[0], result[1]) == ''").value(["a" * 1000, "b" * 1000])


@pytest.mark.parametrize(
    "text",
    [
        "(" * 5000 + "1" + ")" * 5000,
        "[" * 3000 + "]" * 3000,
        "!" * 4000 + "true",
        "-" * 4000 + "1",
        "result" + "?.a" * 1000,
        "all(result, " * 300 + "true" + ")" * 300,
        "1" + " ?? 1" * 900,
        "'" + "a" * 5000 + "'",
        "1" * 4000,
        "1." + "0" * 100,
        "\x00",
        "\ud800",
    ],
)
def test_deep_or_huge_expressions_are_syntax_errors(text: str) -> None:
    error = check_condition(text)
    assert isinstance(error, ConditionSyntaxError)


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("result == result", "deep list"),
        ("string(result) == ''", "deep list"),
        ("min(result) > 0", "deep list"),
        ("result > 0.5", NAN),
        ("result[0] < 0.05", [NAN]),
        ("max(result) > 0", [1, NAN]),
        ("int(result) > 0", NAN),
        ("int(result) > 0", INF),
        ("asInt(result) > 0", -INF),
        ("result.__class__ == nil", 1),
        ("result['__class__'].__name__ == ''", {}),
        ("result.keys == nil", [1]),
        ("'abc'.upper == nil", None),
        ("result == 1", object()),
        ("result matches '(a+)+$'", "a" * 50_000 + "!"),
        ("result matches '" + "(a*)*" * 100 + "'", "a" * 1000 + "b"),
    ],
)
def test_hostile_results_end_in_our_errors(text: str, result: object) -> None:
    if result == "deep list":
        deep: object = 1
        for _ in range(5_000):
            deep = [deep]
        result = deep
    try:
        condition = compile_condition(text)
    except ConditionSyntaxError:
        return
    try:
        verdict = condition.evaluate(result)
    except EvaluationError:
        return
    assert verdict in (True, False)


def test_nan_and_inf_follow_the_documented_rules() -> None:
    assert compile_condition("isNaN(result)").evaluate(NAN)
    assert compile_condition("isInf(result) && result > 0").evaluate(INF)
    assert compile_condition("string(result) == 'NaN'").evaluate(NAN)
    assert compile_condition("round(result) > 1e308").evaluate(INF)
    with pytest.raises(EvaluationError, match="NaN"):
        compile_condition("result < 0.05").evaluate(NAN)


def test_catastrophic_regex_runs_in_linear_time() -> None:
    # RE2 has no backtracking; Python's re would take exponential time on this input.
    assert not compile_condition("result matches '^(a+)+$'").evaluate("a" * 100_000 + "!")
