"""Fuzzing the condition language: generated expressions against hostile results.

The suite runs a small, derandomized budget (ROLLOUTS_FUZZ_EXAMPLES, default 200 a test)
of generated expressions, token soup and arbitrary text;
`python bench/fuzz_conditions.py --examples 10000` runs the same tests with a bigger one.
The only outcomes allowed: a Condition or a ConditionSyntaxError when compiling; a value of
the JSON types or an EvaluationError when evaluating. Anything else is a bug.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollouts.analysis.expr import (
    FUNCTION_NAMES,
    MAX_LENGTH,
    EvaluationError,
    compile_condition,
)
from rollouts.errors import ConditionSyntaxError

EXAMPLES = int(os.environ.get("ROLLOUTS_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 200,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_ATOMS = st.sampled_from([
    "result", "#", "#index", ".value", ".code", "nil", "true", "false", "0", "1", "-1", "2.5",
    "1e308", "9223372036854775807", "0.0", "'a'", '"abc"', "''", "'^a.*$'", "'(a+)+$'", "'('",
    "[]", "[1, 2, 3]", "1..5", "0..2000000", "result[0]", "result.data", "result?.a",
    "__class__", "foo", "'\\u00e9'",
])  # fmt: skip
_BINARY = st.sampled_from([
    "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "and", "or", "in",
    "not in", "??", "..", "matches", "contains", "startsWith", "endsWith", "not matches", "**",
    "^",
])  # fmt: skip
_UNARY = st.sampled_from(["!", "not ", "-", "+"])
_NAMES = st.sampled_from(sorted(FUNCTION_NAMES | {"mean2", "eval", "now"}))


def _compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, _BINARY, inner).map(" ".join),
        st.tuples(_UNARY, inner).map("".join),
        inner.map(lambda e: f"({e})"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} ? {t[1]} : {t[2]}"),
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(inner, inner, st.sampled_from(["{}:{}", ":{}", "{}:", ":"])).map(
            lambda t: f"{t[0]}[{t[2].format(t[1], t[1])}]"),
        st.tuples(inner, st.sampled_from([".a", "?.a", ".value", "?.b"])).map("".join),
        st.tuples(_NAMES, st.lists(inner, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.tuples(_NAMES, inner, inner, st.booleans()).map(
            lambda t: f"{t[0]}({t[1]}, {{{t[2]}}})" if t[3] else f"{t[0]}({t[1]}, {t[2]})"),
    )


EXPRESSIONS = st.recursive(_ATOMS, _compound, max_leaves=12)

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.sampled_from([10**400, -(10**400), 2**63, -(2**63), 2**63 - 1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["x" * 300_000, "a" * 5000 + "!", "(", "^a", "9900"]),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(["a", "b", "value", "code", "data", "__class__"]),
                          inner, max_size=4)
    ),
    max_leaves=12,
)


def _json_like(value: object, depth: int = 0) -> bool:
    if depth > 200:
        return False
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_json_like(v, depth + 1) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_like(v, depth + 1) for k, v in value.items())
    return False


def _check(text: str, result: object) -> None:
    try:
        condition = compile_condition(text)
    except ConditionSyntaxError as exc:
        assert 0 <= exc.position <= max(len(text), MAX_LENGTH)
        return
    try:
        value = condition.value(result)
    except EvaluationError as exc:
        assert exc.message
        return
    assert _json_like(value), repr(value)[:200]
    try:
        verdict = condition.evaluate(result)
    except EvaluationError:
        return
    assert verdict is True or verdict is False


@FUZZ
@given(EXPRESSIONS, VALUES)
def test_generated_expressions_end_in_values_or_our_errors(text: str, result: object) -> None:
    _check(text, result)


TOKENS = st.sampled_from([
    "result", "[", "]", "(", ")", "{", "}", "#", ".", ",", "?", ":", "?.", "??", "..", "0", "1",
    "-1", "0.5", "1e308", "1e999", "'a'", '"b"', "'", "true", "false", "nil", "==", "!=", "<",
    "<=", ">", ">=", "+", "-", "*", "/", "%", "**", "^", "!", "&&", "||", "and", "or", "not",
    "in", "matches", "len", "all", "any", "map", "default", "asInt", "min", "sum", "isNaN",
    "__class__", "x", "status", "\\", "$", " ", "#index",
])  # fmt: skip


@FUZZ
@given(st.lists(TOKENS, max_size=25).map(" ".join), VALUES)
def test_token_soup_ends_in_values_or_our_errors(text: str, result: object) -> None:
    _check(text, result)


@FUZZ
@given(st.text(max_size=80), VALUES)
def test_arbitrary_text_ends_in_values_or_our_errors(text: str, result: object) -> None:
    _check(text, result)


@FUZZ
@given(EXPRESSIONS)
def test_compiling_is_deterministic_and_conditions_are_reusable(text: str) -> None:
    try:
        first = compile_condition(text)
    except ConditionSyntaxError as exc:
        try:
            compile_condition(text)
        except ConditionSyntaxError as again:
            assert (again.position, again.message) == (exc.position, exc.message)
        return
    assert compile_condition(text).tree == first.tree
    outcomes = []
    for _ in range(2):
        try:
            value = first.value([1, 2.5, {"value": "9900"}])
        except EvaluationError as exc:
            outcomes.append(("error", exc.message))
        else:
            outcomes.append(("value", repr(value)))
    assert outcomes[0] == outcomes[1] or "nan" in outcomes[0][1].lower()
