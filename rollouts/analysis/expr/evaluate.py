"""The interpreter: walks the syntax tree against one `result`, within a Budget.

Values are those of JSON (nil, bool, int, float, string, array, map). Member access is a map
lookup, never attribute access: nothing in the tree can reach a Python object's attributes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

import re2

from rollouts.analysis.expr.budget import (
    MAX_BUILT,
    MAX_REGEX,
    Budget,
    EvaluationError,
    checked_int,
    is_int,
    is_list,
    is_number,
    number,
    type_name,
)
from rollouts.analysis.expr.functions import BUILTINS, go_pow, identity
from rollouts.analysis.expr.nodes import (
    Binary,
    Call,
    Chain,
    Element,
    Index,
    ListExpr,
    Lit,
    Member,
    Node,
    Predicate,
    RegexMatch,
    Result,
    Slice,
    Ternary,
    Unary,
)


class _ShortCircuit(Exception):
    """`x?.key` met a nil `x`: the enclosing Chain evaluates to nil."""


def compile_regex(pattern: str) -> re2._Regexp:
    """RE2 (Go's regexp syntax, linear time); ValueError with the reason when invalid."""
    if len(pattern) > MAX_REGEX:
        raise ValueError(f"regular expression longer than {MAX_REGEX} characters")
    try:
        return re2.compile(pattern)
    except re2.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None


class Evaluation:
    """State of one evaluation: the budget and the stack of predicate elements."""

    __slots__ = ("budget", "elements", "result")

    def __init__(self, text: str, result: object) -> None:
        self.budget = Budget(text)
        self.result = result
        self.elements: list[tuple[object, int]] = []

    def fail(self, node: Node, message: str) -> EvaluationError:
        return self.budget.fail(node.pos, message)

    def eval(self, node: Node) -> object:
        self.budget.step(node.pos)
        return _DISPATCH[type(node)](self, node)

    # -- leaves and containers
    def lit(self, node: Lit) -> object:
        return node.value

    def result_(self, node: Result) -> object:
        return self.result

    def element(self, node: Element) -> object:
        item, index = self.elements[-1]
        return index if node.index else item

    def list_(self, node: ListExpr) -> object:
        self.budget.build(node.pos, len(node.items))
        return [self.eval(item) for item in node.items]

    def chain(self, node: Chain) -> object:
        try:
            return self.eval(node.body)
        except _ShortCircuit:
            return None

    def member(self, node: Member) -> object:
        target = self.eval(node.target)
        if target is None and node.optional:
            raise _ShortCircuit
        if not isinstance(target, Mapping):
            raise self.fail(node, f"cannot read key {node.key!r} of {type_name(target)} "
                                  "(not a map)")
        return target.get(node.key)

    def index(self, node: Index) -> object:
        target = self.eval(node.target)
        key = self.eval(node.key)
        if isinstance(target, Mapping):
            if not isinstance(key, str):
                raise self.fail(node, f"map keys are strings, got {type_name(key)}")
            return target.get(key)
        if isinstance(target, (list, tuple, str)):
            if not is_int(key):
                raise self.fail(node, f"array index must be an integer, got {type_name(key)}")
            assert isinstance(key, int)
            if not -len(target) <= key < len(target):
                raise self.fail(node, f"index {key} out of range (length {len(target)})")
            return target[key]
        raise self.fail(node, f"cannot index {type_name(target)}")

    def slice_(self, node: Slice) -> object:
        target = self.eval(node.target)
        if not isinstance(target, (list, tuple, str)):
            raise self.fail(node, f"cannot slice {type_name(target)}")
        length = len(target)
        low = self.bound(node, node.low, 0, length)
        high = self.bound(node, node.high, length, length)
        low = min(low, high)  # as Go's slicing in expr-lang: out-of-range bounds are clamped
        self.budget.build(node.pos, high - low)
        return target[low:high]

    def bound(self, node: Slice, expr: Node | None, default: int, length: int) -> int:
        if expr is None:
            return default
        value = self.eval(expr)
        if not is_int(value):
            raise self.fail(node, f"slice bounds must be integers, got {type_name(value)}")
        assert isinstance(value, int)
        if value < 0:
            value += length
        return max(0, min(value, length))

    # -- operators
    def unary(self, node: Unary) -> object:
        value = self.eval(node.operand)
        if node.op == "!":
            if not isinstance(value, bool):
                raise self.fail(node, f"'!' needs a boolean, got {type_name(value)}")
            return not value
        operand = number(self.budget, node.pos, value, f"unary {node.op!r}")
        if node.op == "+":
            return operand
        return checked_int(self.budget, node.pos, -operand) if isinstance(operand, int) \
            else -operand

    def ternary(self, node: Ternary) -> object:
        cond = self.eval(node.cond)
        if not isinstance(cond, bool):
            raise self.fail(node, f"'?' needs a boolean condition, got {type_name(cond)}")
        return self.eval(node.then if cond else node.other)

    def binary(self, node: Binary) -> object:
        op = node.op
        if op in ("&&", "||"):
            return self.logical(node, op)
        if op == "??":
            left = self.eval(node.left)
            return self.eval(node.right) if left is None else left
        if op in ("in", "not in") and isinstance(node.right, Binary) and node.right.op == "..":
            found = self.in_range(node)
            return found if op == "in" else not found
        left = self.eval(node.left)
        right = self.eval(node.right)
        handler = _BINARY.get(op)
        if handler is not None:
            return handler(self, node, left, right)
        if op.startswith("not "):
            verdict = _BINARY[op[4:]](self, node, left, right)
            return not verdict
        return self.arithmetic(node, op, left, right)

    def logical(self, node: Binary, op: str) -> bool:
        left = self.eval(node.left)
        if not isinstance(left, bool):
            raise self.fail(node, f"{op!r} needs booleans, got {type_name(left)}")
        if (op == "&&" and not left) or (op == "||" and left):
            return left
        right = self.eval(node.right)
        if not isinstance(right, bool):
            raise self.fail(node, f"{op!r} needs booleans, got {type_name(right)}")
        return right

    def equal(self, node: Node, a: object, b: object, depth: int = 0) -> bool:
        self.budget.step(node.pos)
        if depth > 100:
            raise self.fail(node, "value nested too deeply")
        if is_number(a) and is_number(b):
            return a == b
        if a is None or b is None:
            return a is None and b is None
        if isinstance(a, bool) and isinstance(b, bool):
            return a == b
        if isinstance(a, str) and isinstance(b, str):
            return a == b
        if is_list(a) and is_list(b):
            assert isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))
            return len(a) == len(b) and all(
                self.equal(node, x, y, depth + 1) for x, y in zip(a, b, strict=True)
            )
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            return set(a) == set(b) and all(self.equal(node, a[k], b[k], depth + 1) for k in a)
        for value in (a, b):
            if type_name(value).startswith("unsupported"):
                raise self.fail(node, type_name(value))
        return False

    def eq(self, node: Binary, a: object, b: object) -> bool:
        return self.equal(node, a, b)

    def ne(self, node: Binary, a: object, b: object) -> bool:
        return not self.equal(node, a, b)

    def contains_item(self, node: Binary, item: object, container: object) -> bool:
        if isinstance(container, Mapping):
            if not isinstance(item, str):
                raise self.fail(node, f"map keys are strings, got {type_name(item)}")
            return item in container
        if is_list(container):
            assert isinstance(container, (list, tuple))
            self.budget.step(node.pos, len(container))
            return any(self.equal(node, item, x) for x in container)
        raise self.fail(node, f"'in' needs an array or map on the right, "
                              f"got {type_name(container)}")

    def in_range(self, node: Binary) -> bool:
        """`x in a..b` without building the range."""
        assert isinstance(node.right, Binary)
        item = self.eval(node.left)
        low, high = self.range_bounds(node.right)
        # Membership by equality, as in the built range: only whole numbers are in it.
        if isinstance(item, float):
            return item.is_integer() and low <= item <= high
        return is_int(item) and low <= item <= high  # type: ignore[operator]

    def range_bounds(self, node: Binary) -> tuple[int, int]:
        low = self.eval(node.left)
        high = self.eval(node.right)
        if not (is_int(low) and is_int(high)):
            raise self.fail(node, f"'..' needs integers, got {type_name(low)}..{type_name(high)}")
        assert isinstance(low, int) and isinstance(high, int)
        return number(self.budget, node.pos, low, "'..'"), number(  # type: ignore[return-value]
            self.budget, node.pos, high, "'..'")

    def range_(self, node: Binary, low: object, high: object) -> object:
        if not (is_int(low) and is_int(high)):
            raise self.fail(node, f"'..' needs integers, got {type_name(low)}..{type_name(high)}")
        low = int(number(self.budget, node.pos, low, "'..'"))
        high = int(number(self.budget, node.pos, high, "'..'"))
        size = max(0, high - low + 1)
        if size > MAX_BUILT:
            raise self.fail(node, f"range of {size} elements is too large")
        self.budget.build(node.pos, size)
        return list(range(low, high + 1))

    def order(self, node: Binary, a: object, b: object) -> bool:
        op = node.op
        if is_number(a) and is_number(b):
            x = number(self.budget, node.pos, a, repr(op))
            y = number(self.budget, node.pos, b, repr(op))
            if math.isnan(x) or math.isnan(y):
                raise self.fail(node, f"cannot compare NaN with {op!r}")
        elif isinstance(a, str) and isinstance(b, str):
            x, y = a, b  # type: ignore[assignment]
        else:
            raise self.fail(node, f"cannot compare {type_name(a)} {op} {type_name(b)}")
        if op == "<":
            return x < y
        if op == "<=":
            return x <= y
        if op == ">":
            return x > y
        return x >= y

    def strings(self, node: Binary, a: object, b: object) -> tuple[str, str]:
        if not (isinstance(a, str) and isinstance(b, str)):
            raise self.fail(node, f"{node.op!r} needs strings, got {type_name(a)} and "
                                  f"{type_name(b)}")
        self.budget.step(node.pos, len(a) // 64)
        return a, b

    def contains(self, node: Binary, a: object, b: object) -> bool:
        text, part = self.strings(node, a, b)
        return part in text

    def starts_with(self, node: Binary, a: object, b: object) -> bool:
        text, part = self.strings(node, a, b)
        return text.startswith(part)

    def ends_with(self, node: Binary, a: object, b: object) -> bool:
        text, part = self.strings(node, a, b)
        return text.endswith(part)

    def matches(self, node: Binary, a: object, b: object) -> bool:
        text, pattern = self.strings(node, a, b)
        try:
            regex = compile_regex(pattern)
        except ValueError as exc:
            raise self.fail(node, str(exc)) from None
        return regex.search(text) is not None

    def regex_match(self, node: RegexMatch) -> object:
        text = self.eval(node.target)
        if not isinstance(text, str):
            raise self.fail(node, f"'matches' needs a string, got {type_name(text)}")
        self.budget.step(node.pos, len(text) // 64)
        found = node.regex.search(text) is not None
        return not found if node.negated else found

    def arithmetic(self, node: Binary, op: str, a: object, b: object) -> object:
        if op == "..":
            return self.range_(node, a, b)
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            self.budget.build(node.pos, len(a) + len(b))
            return a + b
        if not (is_number(a) and is_number(b)):
            raise self.fail(node, f"cannot compute {type_name(a)} {op} {type_name(b)}")
        x = number(self.budget, node.pos, a, repr(op))
        y = number(self.budget, node.pos, b, repr(op))
        if op in ("**", "^"):
            return go_pow(float(x), float(y))
        if op == "/":
            if y == 0:
                raise self.fail(node, "division by zero")
            return float(x) / float(y)
        if op == "%":
            if not (isinstance(x, int) and isinstance(y, int)):
                raise self.fail(node, "'%' needs integers")
            if y == 0:
                raise self.fail(node, "modulo by zero")
            # Go semantics: the remainder takes the sign of the dividend.
            remainder = abs(x) % abs(y)
            return -remainder if x < 0 else remainder
        value = x + y if op == "+" else x - y if op == "-" else x * y
        return checked_int(self.budget, node.pos, value) if isinstance(value, int) else value

    # -- calls
    def call(self, node: Call) -> object:
        builtin = BUILTINS[node.func]
        if builtin.higher is None:
            assert builtin.plain is not None
            return builtin.plain(self.budget, node.pos, [self.eval(a) for a in node.args])
        items = self.eval(node.args[0])
        if not is_list(items):
            raise self.fail(node, f"{node.func}() needs an array, got {type_name(items)}")
        assert isinstance(items, (list, tuple))
        self.budget.step(node.pos, len(items))
        predicate: Callable[[object, int], object] = identity
        if len(node.args) > 1:
            body = node.args[1]
            assert isinstance(body, Predicate)
            predicate = self.bind(body.body)
        return builtin.higher(self.budget, node.pos, items, predicate)

    def bind(self, body: Node) -> Callable[[object, int], object]:
        def predicate(item: object, index: int) -> object:
            self.elements.append((item, index))
            try:
                return self.eval(body)
            finally:
                self.elements.pop()

        return predicate

    def predicate_outside_call(self, node: Predicate) -> object:
        raise self.fail(node, "a predicate is only allowed as a function argument")


# Each handler takes its own node type; the table is keyed by that type.
_DISPATCH: Final[Mapping[type, Callable[[Evaluation, Any], object]]] = MappingProxyType({
    Lit: Evaluation.lit,
    Result: Evaluation.result_,
    Element: Evaluation.element,
    ListExpr: Evaluation.list_,
    Chain: Evaluation.chain,
    Member: Evaluation.member,
    Index: Evaluation.index,
    Slice: Evaluation.slice_,
    Unary: Evaluation.unary,
    Binary: Evaluation.binary,
    Ternary: Evaluation.ternary,
    Call: Evaluation.call,
    Predicate: Evaluation.predicate_outside_call,
    RegexMatch: Evaluation.regex_match,
})

_Compare = Callable[[Evaluation, Binary, object, object], bool]
_BINARY: Final[Mapping[str, _Compare]] = MappingProxyType({
    "==": Evaluation.eq,
    "!=": Evaluation.ne,
    "<": Evaluation.order,
    "<=": Evaluation.order,
    ">": Evaluation.order,
    ">=": Evaluation.order,
    "in": lambda ev, node, a, b: ev.contains_item(node, a, b),
    "contains": Evaluation.contains,
    "startsWith": Evaluation.starts_with,
    "endsWith": Evaluation.ends_with,
    "matches": Evaluation.matches,
})


def evaluate(text: str, tree: Node, result: object) -> object:
    """The value of `tree` for this `result`; EvaluationError when it cannot be computed."""
    run = Evaluation(text, result)
    try:
        return run.eval(tree)
    except RecursionError:
        raise EvaluationError(text, 0, "value nested too deeply") from None

