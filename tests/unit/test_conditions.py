"""The condition language: what it accepts, what it refuses, and that nothing escapes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.analysis.conditions import (
    MAX_LENGTH,
    MAX_STEPS,
    Condition,
    EvaluationError,
    check_condition,
    compile_condition,
    measurement_outcome,
    measurement_phase,
)
from rollouts.errors import ConditionSyntaxError, RolloutsError

NAN = float("nan")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


INF = float("inf")


@pytest.mark.parametrize(
    ("text", "result", "expected"),
    [
        # Argo's everyday shapes
        ("result[0] >= 0.95", [0.97], True),
        ("result[0] >= 0.95", [0.5], False),
        ("result > 10", 11, True),
        ("result < 0.05", 0.12, False),
        ("result == 'true'", "true", True),
        ('result == "ok"', "ok", True),
        ("result.status == 'ok'", {"status": "ok"}, True),
        ('result["status"] == "ok"', {"status": "ok"}, True),
        ("result.data.rate > 0.9", {"data": {"rate": 0.95}}, True),
        (
            "(result.requests_made * result.requests_succeeded / 100) >= 90",
            {"requests_made": 100, "requests_succeeded": 95},
            True,
        ),
        ("len(result) == 0 || result[0] < 0.05", [], True),
        ("len(result) > 0 && result[0] < 0.05", [0.01], True),
        ("result[-1] == 3", [1, 2, 3], True),
        ("isNaN(result[0])", [NAN], True),
        ("isNaN(result)", 1.0, False),
        ("isInf(result)", INF, True),
        ("isNil(result)", None, True),
        ("result == nil", None, True),
        ("result != nil", 0, True),
        ("default(result.missing, 7) == 7", {}, True),
        ("default(result, 7) == 3", 3, True),
        ("asInt(result) == 1", "1", True),
        ("asInt(result) == 2", 2.9, True),
        ("asFloat(result) > 0.5", "0.75", True),
        ("asFloat(result) == 2.0", 2, True),
        ("abs(result) < 1", -0.5, True),
        ("min(result) > 0.9", [0.95, 0.99], True),
        ("max(result) > 0.98", [0.95, 0.99], True),
        ("max(1, 2.5, result) == 3", 3, True),
        ("sum(result) == 6", [1, 2, 3], True),
        ("sum(result) == 0", [], True),
        ("all(result, {# > 0.9})", [0.95, 0.99], True),
        ("all(result, {# > 0.9})", [0.95, 0.5], False),
        ("all(result, {# > 0.9})", [], True),
        ("any(result, {# > 0.9})", [0.1, 0.99], True),
        ("none(result, {# > 0.9})", [0.1, 0.2], True),
        ("any(result, {all(#, {# > 1})})", [[0, 2], [3, 4]], True),
        ("any(result, {#.code == 500})", [{"code": 200}, {"code": 500}], True),
        # literals and operators
        ("1 == 1.0", None, True),
        ("true == 1", None, False),
        ("1 == '1'", None, False),
        ("[1, 2] == [1, 2.0]", None, True),
        ("result == [1, 2]", [1, 2], True),
        ("result == {}", {}, None),  # `{` is not a map literal -> syntax error (checked below)
        ("7 % 3 == 1", None, True),
        ("-7 % 3 == -1", None, True),
        ("7 / 2 == 3.5", None, True),
        ("4 / 2 == 2", None, True),
        ("1 + 2 * 3 == 7", None, True),
        ("(1 + 2) * 3 == 9", None, True),
        ("-result == -2", 2, True),
        ("+result == 2", 2, True),
        ("'a' + 'b' == 'ab'", None, True),
        ("'abc' < 'abd'", None, True),
        ("!(result > 1)", 0, True),
        ("not result", False, True),
        ("result > 1 and result < 3", 2, True),
        ("result < 1 or result > 3", 2, False),
        ("result > 1 ? result < 3 : false", 2, True),
        ("result in [200, 201]", 201, True),
        ("result not in [200, 201]", 500, True),
        ("'a' in result", {"a": 1}, True),
        ("'b' in result", {"a": 1}, False),
        ("1e3 == 1000", None, True),
        (".5 == 0.5", None, True),
        ("'it\\'s' == \"it's\"", None, True),
        ("9223372036854775807 > 0", None, True),
        ("result[0][1] == 2", [[1, 2]], True),
        ("len('abc') == 3", None, True),
        ("len(result) == 2", {"a": 1, "b": 2}, True),
        ("result[0] == 'a'", "abc", True),
    ],
)
def test_evaluates(text: str, result: object, expected: bool | None) -> None:
    if expected is None:
        assert check_condition(text) is not None
        return
    assert compile_condition(text).evaluate(result) is expected


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("", 0, "empty"),
        ("   ", 0, "empty"),
        ("foo > 1", 0, "unknown name 'foo'"),
        ("result > threshold", 9, "unknown name 'threshold'"),
        ("Result > 1", 0, "unknown name"),
        ("result.__class__", 7, "'__class__' is not allowed"),
        ("result.__class__.__mro__", 7, "not allowed"),
        ("__import__('os').system('id')", 0, "not allowed"),
        ("__builtins__", 0, "not allowed"),
        ("lambda: 1", 0, "unknown name 'lambda'"),
        ("lambda x: x", 0, "unknown name"),
        ("eval('1')", 0, "unknown function 'eval'"),
        ("exec('1')", 0, "unknown function"),
        ("open('/etc/passwd')", 0, "unknown function"),
        ("getattr(result, 'x')", 0, "unknown function"),
        ("mean2(result) > 1", 0, "unknown function 'mean2'"),
        ("[x for x in result]", 1, "unknown name 'x'"),
        ("result(1)", 6, "not a function"),
        ("len", 3, "is a function"),
        ("len(1, 2)", 0, "takes 1 argument"),
        ("default(1)", 0, "takes 2 argument"),
        ("all(result)", 0, "takes 2 argument"),
        ("all(result, {# > 1)", 18, "expected '}'"),
        ("#", 0, "only allowed inside"),
        ("{# > 1}", 0, "predicate is only allowed"),
        ("result == {}", 10, "predicate is only allowed"),
        ("9 ** ", 5, "unexpected end"),
        ("2 ^^ 10", 3, "unexpected '^'"),
        ("1e999 > 1", 0, "number too large"),
        ("99999999999999999999 > 1", 0, "integer too large"),
        ("1" * 50 + " > 1", 0, "too long"),
        ("1 < 2 < 3", 6, "chained comparisons"),
        ("result == 1 == true", 12, "chained comparisons"),
        ("result[0] >", 11, "unexpected end"),
        ("result[0", 8, "expected ']'"),
        ("(result > 1", 11, "expected ')'"),
        ("result > 1)", 10, "unexpected ')'"),
        ("'unterminated", 0, "unterminated string"),
        ("'bad \\x escape'", 5, "invalid escape"),
        ("result $ 1", 7, "unexpected character '$'"),
        ("result; 1", 6, "unexpected character ';'"),
        ("result = 1", 7, "unexpected character '='"),
        ("result & 1", 7, "unexpected character '&'"),
        ("result.", 7, "expected a key name"),
        ("result.0", 6, "unexpected '.0'"),  # ".0" scans as a number
        ("12abc", 2, "invalid number"),
        ("résult > 1", 0, "invalid name"),
        ("true true", 5, "unexpected 'true'"),
        ("and", 0, "unexpected 'and'"),
        ("result > 1 ? 2", 14, "expected ':'"),
        ("(" * 51 + "1" + ")" * 51, 51, "nested too deeply"),
        ("-" * 500 + "1", 51, "nested too deeply"),
        ("!" * 3000 + "true", 51, "nested too deeply"),
        ("not " * 200 + "true", 204, "nested too deeply"),
        ("result" + "[0]" * 200, None, "nested too deeply"),
        ("+".join(["1"] * 200), None, "nested too deeply"),
        ("(" * 10000 + "1" + ")" * 10000, MAX_LENGTH, "longer than"),
        ("result > " + "1" * (MAX_LENGTH + 1), MAX_LENGTH, "longer than"),
        ("'" + "a" * 2000 + "'", 0, "string literal too long"),
        ("[" + ",".join(["[1]"] * 600) + "]", None, "too complex"),
    ],
    ids=_short,
)
def test_syntax_errors(text: str, position: int | None, fragment: str) -> None:
    err = check_condition(text)
    assert isinstance(err, ConditionSyntaxError)
    assert fragment in err.message
    if position is not None:
        assert err.position == position
    with pytest.raises(ConditionSyntaxError):
        compile_condition(text)


@pytest.mark.parametrize(
    ("text", "result", "fragment"),
    [
        ("result.x > 1", [1], "not a map"),
        ("result.x > 1", 1.5, "not a map"),
        ("result.x > 1", "str", "not a map"),
        ("result.upper == 1", "abc", "not a map"),
        ("result.missing > 1", {}, "cannot compare nil > int"),
        ("result[1] > 1", [1], "out of range"),
        ("result[-2] > 1", [1], "out of range"),
        ("result[0] < 0.05", [], "out of range"),
        ("result['a'] > 1", [1], "array index must be an integer"),
        ("result[0] > 1", {"0": 1}, "map keys are strings"),
        ("result[0] > 1", 5, "cannot index int"),
        ("result[0] > 1", None, "cannot index nil"),
        ("result > 1", "2", "cannot compare string > int"),
        ("result > 1", None, "cannot compare nil > int"),
        ("result > 1", True, "cannot compare bool > int"),
        ("result > 1", [2], "cannot compare array > int"),
        ("result > 0.5", NAN, "NaN"),
        ("result[0] < 0.05", [NAN], "NaN"),
        ("result + 1 > 0", "a", "cannot compute"),
        ("result * 2 > 0", [1], "cannot compute"),
        ("1 / result > 0", 0, "division by zero"),
        ("1 % result > 0", 0, "modulo by zero"),
        ("1.5 % 2 > 0", None, "'%' needs integers"),
        ("9223372036854775807 + result > 0", 1, "integer overflow"),
        ("-9223372036854775807 - result < 0", 2, "integer overflow"),
        ("result * result > 0", 2**40, "integer overflow"),
        ("-result < 0", -(2**63), "integer overflow"),
        ("result", 1, "must give a boolean"),
        ("result", None, "must give a boolean"),
        ("result[0]", [0.9], "must give a boolean"),
        ("result && true", 1, "needs booleans"),
        ("true || result", 1, None),  # short-circuit: never looks at result
        ("false || result", 1, "needs booleans"),
        ("!result", 1, "'!' needs a boolean"),
        ("-result < 0", "a", "needs a number"),
        ("result ? true : false", 1, "boolean condition"),
        ("len(result) > 0", 5, "len() needs"),
        ("isNaN(result)", "x", "needs a number"),
        ("asInt(result) > 0", "abc", "not a number"),
        ("asInt(result) > 0", NAN, "cannot convert"),
        ("asFloat(result) > 0", "x", "not a number"),
        ("asFloat(result) > 0", None, "needs a number"),
        ("min(result) > 0", [], "cannot compare nil > int"),
        ("mean(result) > 0", [], "empty array"),
        ("min(result) > 0", "a", "needs an array or several numbers"),
        ("max(result) > 0", [1, NAN], "NaN"),
        ("sum(result) > 0", [1, "a"], "needs a number"),
        ("sum(result) > 0", 1, "sum() needs an array"),
        ("all(result, {# > 0})", 5, "needs an array"),
        ("all(result, {#})", [1], "must give a boolean"),
        ("1 in result", 5, "'in' needs an array or map"),
        ("1 in result", {"a": 1}, "map keys are strings"),
        ("result == 1", object(), "unsupported value"),
    ],
)
def test_evaluation_errors(text: str, result: object, fragment: str | None) -> None:
    condition = compile_condition(text)
    if fragment is None:
        assert condition.evaluate(result) in (True, False)
        return
    with pytest.raises(EvaluationError) as info:
        condition.evaluate(result)
    assert fragment in info.value.message
    assert isinstance(info.value, RolloutsError)
    assert not isinstance(info.value, ConditionSyntaxError)


def test_nesting_up_to_the_limit_is_fine_even_on_a_deep_stack() -> None:
    text = "(" * 49 + "result" + ")" * 49 + " > 1"

    def nested(frames: int) -> bool:
        return compile_condition(text).evaluate(2) if frames == 0 else nested(frames - 1)

    assert nested(600)
    assert compile_condition("+".join(["1"] * 45) + " == 45").evaluate(None)


def test_evaluation_error_points_at_the_failing_node() -> None:
    with pytest.raises(EvaluationError) as info:
        compile_condition("result[0] > 1 && result[5] > 1").evaluate([2])
    assert info.value.position == 23  # the second '['


def test_step_budget_bounds_work_over_large_results() -> None:
    big = list(range(10_000))
    condition = compile_condition("all(result, {all(result, {# >= 0})})")
    with pytest.raises(EvaluationError, match="budget"):
        condition.evaluate(big)
    # A single pass over a large vector is fine.
    assert compile_condition("all(result, {# >= 0})").evaluate(big[: MAX_STEPS // 10])


def test_membership_scan_is_charged() -> None:
    with pytest.raises(EvaluationError, match="budget"):
        compile_condition("all(result, {# in result})").evaluate(list(range(2_000)))


def test_deeply_nested_result_value_is_an_evaluation_error() -> None:
    deep: object = 1
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(EvaluationError):
        compile_condition("result == result").evaluate(deep)


def test_map_key_lookup_is_not_attribute_access() -> None:
    # Keys that collide with Python attribute names are plain keys.
    condition = compile_condition("result.keys == 1 && result.items == 2")
    assert condition.evaluate({"keys": 1, "items": 2})
    assert not compile_condition("result.get == 1").evaluate({})
    with pytest.raises(EvaluationError):
        compile_condition("result.real > 0").evaluate(1.5)
    # Dunder keys through indexing are only map lookups.
    assert compile_condition("result['__class__'] == nil").evaluate({})


def test_condition_is_reusable_and_immutable() -> None:
    condition = compile_condition("result[0] > 1")
    assert condition.evaluate([2]) and not condition.evaluate([0])
    assert str(condition) == "result[0] > 1"
    with pytest.raises(AttributeError):
        condition.text = "x"  # type: ignore[misc]


def test_non_string_condition_is_a_syntax_error() -> None:
    with pytest.raises(ConditionSyntaxError):
        compile_condition(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Outcome rules


S_OK = "result < 0.05"  # success
F_BAD = "result > 0.10"  # failure


def _c(text: str | None) -> Condition | None:
    return compile_condition(text) if text else None


@pytest.mark.parametrize(
    ("success", "failure", "result", "phase"),
    [
        (S_OK, F_BAD, 0.01, "Successful"),
        (S_OK, F_BAD, 0.2, "Failed"),
        (S_OK, F_BAD, 0.07, "Inconclusive"),  # neither
        ("result > 0", "result > 0.5", 0.7, "Failed"),  # both -> Failed
        (S_OK, None, 0.01, "Successful"),
        (S_OK, None, 0.07, "Failed"),  # failure is the negation of success
        (None, F_BAD, 0.07, "Successful"),  # success is the negation of failure
        (None, F_BAD, 0.2, "Failed"),
        (None, None, 0.2, "Successful"),
        ("result[0] < 0.05", None, [], "Error"),
        ("result[0] < 0.05", None, [NAN], "Error"),
        (None, "result[0] > 0.1", [NAN], "Error"),
        ("result > 1", None, "oops", "Error"),
        # failureCondition holding wins even if the successCondition errors
        ("result[0] > 0.9", "len(result) == 0", [], "Failed"),
        # no data is never Successful
        ("len(result) == 0", None, [], "Inconclusive"),
        (None, None, [], "Inconclusive"),
        (None, None, None, "Inconclusive"),
        (None, None, NAN, "Inconclusive"),
        (None, None, {}, "Inconclusive"),
        (None, "len(result) > 0", [], "Inconclusive"),
        ("isNil(result)", None, None, "Inconclusive"),
        ("len(result) == 0", "len(result) == 0", [], "Failed"),
    ],
)
def test_measurement_phase(
    success: str | None, failure: str | None, result: object, phase: str
) -> None:
    assert measurement_phase(_c(success), _c(failure), result) == phase


def test_outcome_messages_say_why() -> None:
    phase, message = measurement_outcome(_c("result[0] < 0.05"), None, [])
    assert phase == "Error" and message is not None
    assert "no data" in message and "out of range" in message
    phase, message = measurement_outcome(None, None, [])
    assert phase == "Inconclusive" and message is not None and "no data" in message
    assert measurement_outcome(_c(S_OK), None, 0.01) == ("Successful", None)


# ---------------------------------------------------------------------------------------------
# Properties

_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "status", "x"]), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.none(), st.just(S_OK), st.just("result[0] < 0.05"), st.just("len(result) == 0")),
    st.one_of(st.none(), st.just(F_BAD), st.just("result[0] > 0.1")),
    _VALUES,
)
def test_outcome_is_total_and_never_succeeds_without_data(
    success: str | None, failure: str | None, value: object
) -> None:
    phase, message = measurement_outcome(_c(success), _c(failure), value)
    assert phase in ("Successful", "Failed", "Inconclusive", "Error")
    if phase == "Error":
        assert message
    empty = value is None or value == [] or value == {} or value == ""
    if empty or (isinstance(value, float) and math.isnan(value)):
        assert phase != "Successful"
