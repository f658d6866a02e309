"""A safe evaluator for `successCondition` / `failureCondition`.

The language is the subset of expr-lang (what Argo Rollouts evaluates) that analysis
conditions use. Input is never handed to Python's eval/exec/compile: a hand-written
tokenizer and a Pratt parser build our own AST, which a small interpreter walks. Work is
bounded: expression length, AST depth and size, literal size, integer range and the number
of evaluation steps (loops over `result` included) are all capped.

Grammar (lowest precedence first)::

    expr       := or_expr [ "?" expr ":" expr ]
    or_expr    := and_expr { ("||" | "or") and_expr }
    and_expr   := cmp_expr { ("&&" | "and") cmp_expr }
    cmp_expr   := add_expr [ ("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") add_expr ]
    add_expr   := mul_expr { ("+" | "-") mul_expr }
    mul_expr   := unary { ("*" | "/" | "%") unary }
    unary      := ("!" | "not" | "-" | "+") unary | postfix
    postfix    := primary { "[" expr "]" | "." IDENT }
    primary    := NUMBER | STRING | "true" | "false" | "nil" | "result" | "#"
                | "(" expr ")" | "[" [ expr { "," expr } ] "]" | FUNC "(" args ")"
    args       := arg { "," arg }      arg := expr | "{" expr "}"   (predicates: all/any only)

Names: the only variable is `result`; `#` is the current element inside a `{...}`
predicate. Any other name, and any name starting with `__`, is a syntax error.

Member access `x.key` is a map-key lookup and only works when `x` is a map (a JSON object
from the web provider): `result.status` is `result["status"]`. There is no attribute access
of any kind; `.key` on a list, number or string is an EvaluationError. A missing key yields
`nil` (as in expr-lang), so `result.missing > 1` is an EvaluationError, not a silent false.

Semantics:
- `==`/`!=` compare numbers by value (1 == 1.0) and everything else by type and value;
  booleans are never equal to numbers.
- `<`, `<=`, `>`, `>=` need two numbers or two strings. NaN in an ordering comparison is an
  EvaluationError (test it with isNaN), so a NaN never passes a threshold.
- `+` adds numbers or concatenates strings; `-`, `*` numbers; `/` always gives a float
  (expr-lang); `%` needs integers. Division or modulo by zero is an EvaluationError.
  Integers stay within int64; overflow is an EvaluationError. There is no `**`.
- `&&`, `||`, `!`, `?:` need booleans and short-circuit.
- `x in list` is membership; `"k" in map` tests a key.
- `list[i]` with a negative `i` counts from the end (expr-lang); out of range is an error.

Functions (fixed table, arity checked when parsing):
    len(x)            length of a string, list or map
    default(x, d)     x unless it is nil, else d
    isNil(x)          x is nil
    isNaN(x), isInf(x)  for numbers
    asInt(x), asFloat(x)  convert a number or numeric string
    abs(x)
    min(list) / min(a, b, ...), max(...), sum(list)
    all(list, {pred}), any(list, {pred}), none(list, {pred})   `#` is the element
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, NamedTuple, TypeAlias

from rollouts.errors import ConditionSyntaxError, RolloutsError

MAX_LENGTH: Final = 4096
MAX_DEPTH: Final = 50  # conservative: each level costs several Python frames
MAX_NODES: Final = 1000
MAX_STEPS: Final = 100_000
MAX_STRING_LITERAL: Final = 1024
MAX_NUMBER_LITERAL: Final = 40  # characters
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


# ---------------------------------------------------------------------------------------------
# Tokens

TokenKind = Literal["num", "str", "name", "op", "end"]


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    pos: int
    value: object = None


_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "true", "false", "nil"})
# Longest first so that "<=" wins over "<".
_OPERATORS: Final = (
    "&&", "||", "==", "!=", "<=", ">=",
    "<", ">", "+", "-", "*", "/", "%", "!", "?", ":", ",", ".", "(", ")", "[", "]", "{", "}",
    "#",
)  # fmt: skip
_ESCAPES: Final = MappingProxyType(
    {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r"}
)


_DIGITS: Final = frozenset("0123456789")


def _is_digit(ch: str) -> bool:
    # str.isdigit() also accepts characters such as '¹' that int() refuses.
    return ch in _DIGITS


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        start = i
        if _is_digit(ch) or (ch == "." and i + 1 < n and _is_digit(text[i + 1])):
            i = _scan_number(text, i)
            tokens.append(_number_token(text, start, i))
            continue
        if ch in "\"'":
            value, i = _scan_string(text, i)
            tokens.append(Token("str", text[start:i], start, value))
            continue
        if ch.isalpha() or ch == "_":
            while i < n and (text[i].isalnum() or text[i] == "_"):
                i += 1
            word = text[start:i]
            if not word.isascii():
                raise ConditionSyntaxError(text, start, f"invalid name {word!r}")
            tokens.append(Token("name", word, start))
            continue
        if text.startswith("**", i):
            raise ConditionSyntaxError(text, i, "'**' is not supported")
        for op in _OPERATORS:
            if text.startswith(op, i):
                tokens.append(Token("op", op, start))
                i += len(op)
                break
        else:
            raise ConditionSyntaxError(text, i, f"unexpected character {ch!r}")
    tokens.append(Token("end", "", n))
    return tokens


def _scan_number(text: str, i: int) -> int:
    n = len(text)
    while i < n and _is_digit(text[i]):
        i += 1
    if i < n and text[i] == "." and i + 1 < n and _is_digit(text[i + 1]):
        i += 1
        while i < n and _is_digit(text[i]):
            i += 1
    if i < n and text[i] in "eE":
        j = i + 1
        if j < n and text[j] in "+-":
            j += 1
        if j < n and _is_digit(text[j]):
            i = j
            while i < n and _is_digit(text[i]):
                i += 1
    if i < n and (text[i].isalpha() or text[i] == "_"):
        raise ConditionSyntaxError(text, i, "invalid number")
    return i


def _number_token(text: str, start: int, end: int) -> Token:
    literal = text[start:end]
    if len(literal) > MAX_NUMBER_LITERAL:
        raise ConditionSyntaxError(text, start, "number literal too long")
    value: int | float
    if any(c in literal for c in ".eE"):
        value = float(literal)
        if math.isinf(value):
            raise ConditionSyntaxError(text, start, "number too large")
    else:
        value = int(literal)
        if value > INT_MAX:
            raise ConditionSyntaxError(text, start, "integer too large (int64)")
    return Token("num", literal, start, value)


def _scan_string(text: str, i: int) -> tuple[str, int]:
    quote = text[i]
    start = i
    i += 1
    out: list[str] = []
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= n or text[i + 1] not in _ESCAPES:
                raise ConditionSyntaxError(text, i, "invalid escape in string")
            out.append(_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
        if len(out) > MAX_STRING_LITERAL:
            raise ConditionSyntaxError(text, start, "string literal too long")
    raise ConditionSyntaxError(text, start, "unterminated string")


# ---------------------------------------------------------------------------------------------
# AST


@dataclass(frozen=True, slots=True)
class Lit:
    pos: int
    value: object


@dataclass(frozen=True, slots=True)
class Result:
    pos: int


@dataclass(frozen=True, slots=True)
class Element:
    pos: int


@dataclass(frozen=True, slots=True)
class ListExpr:
    pos: int
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Index:
    pos: int
    target: Node
    key: Node


@dataclass(frozen=True, slots=True)
class Member:
    pos: int
    target: Node
    key: str


@dataclass(frozen=True, slots=True)
class Unary:
    pos: int
    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    pos: int
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Ternary:
    pos: int
    cond: Node
    then: Node
    other: Node


@dataclass(frozen=True, slots=True)
class Predicate:
    pos: int
    body: Node


@dataclass(frozen=True, slots=True)
class Call:
    pos: int
    func: str
    args: tuple[Node, ...]


Node: TypeAlias = (
    Lit | Result | Element | ListExpr | Index | Member | Unary | Binary | Ternary | Predicate | Call
)

# name -> (min args, max args or None, which argument positions are predicates)
_FUNCTIONS: Final = MappingProxyType(
    {
        "len": (1, 1, frozenset[int]()),
        "default": (2, 2, frozenset[int]()),
        "isNil": (1, 1, frozenset[int]()),
        "isNaN": (1, 1, frozenset[int]()),
        "isInf": (1, 1, frozenset[int]()),
        "asInt": (1, 1, frozenset[int]()),
        "asFloat": (1, 1, frozenset[int]()),
        "abs": (1, 1, frozenset[int]()),
        "min": (1, None, frozenset[int]()),
        "max": (1, None, frozenset[int]()),
        "sum": (1, 1, frozenset[int]()),
        "all": (2, 2, frozenset({1})),
        "any": (2, 2, frozenset({1})),
        "none": (2, 2, frozenset({1})),
    }
)
FUNCTION_NAMES: Final = frozenset(_FUNCTIONS)

_COMPARISONS: Final = frozenset({"==", "!=", "<", "<=", ">", ">=", "in", "not in"})
_BINDING: Final = MappingProxyType(
    {
        "||": 10, "or": 10,
        "&&": 20, "and": 20,
        "==": 30, "!=": 30, "<": 30, "<=": 30, ">": 30, ">=": 30, "in": 30, "not in": 30,
        "+": 40, "-": 40,
        "*": 50, "/": 50, "%": 50,
    }
)  # fmt: skip
_CANONICAL: Final = MappingProxyType({"or": "||", "and": "&&", "not": "!"})


class _Parser:
    """Pratt parser; one instance per compile, discarded afterwards."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.nodes = 0
        self.predicate_depth = 0

    # -- helpers
    def error(self, pos: int, message: str) -> ConditionSyntaxError:
        return ConditionSyntaxError(self.text, pos, message)

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def is_op(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    def expect(self, text: str) -> Token:
        if not self.is_op(text):
            found = self.tok.text or "end of input"
            raise self.error(self.tok.pos, f"expected {text!r}, found {found!r}")
        return self.advance()

    def node(self, n: Node, depth: int) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.error(n.pos, f"expression too complex (more than {MAX_NODES} nodes)")
        if depth > MAX_DEPTH:
            raise self.error(n.pos, f"expression nested too deeply (more than {MAX_DEPTH})")
        return n

    # -- grammar
    def parse(self) -> Node:
        tree, _ = self.expr(0)
        if self.tok.kind != "end":
            raise self.error(self.tok.pos, f"unexpected {self.tok.text!r}")
        return tree

    def expr(self, depth: int) -> tuple[Node, int]:
        if depth > MAX_DEPTH:
            raise self.error(self.tok.pos, f"expression nested too deeply (more than {MAX_DEPTH})")
        cond, d = self.binary(0, depth)
        if not self.is_op("?"):
            return cond, d
        pos = self.advance().pos
        then, d1 = self.expr(depth + 1)
        self.expect(":")
        other, d2 = self.expr(depth + 1)
        d = max(d, d1, d2) + 1
        return self.node(Ternary(pos, cond, then, other), d), d

    def binary_op(self) -> str | None:
        tok = self.tok
        if tok.kind == "op" and tok.text in _BINDING:
            return tok.text
        if tok.kind == "name" and tok.text in ("and", "or", "in"):
            return tok.text
        if tok.kind == "name" and tok.text == "not":
            nxt = self.tokens[self.i + 1]
            if nxt.kind == "name" and nxt.text == "in":
                return "not in"
        return None

    def binary(self, min_bp: int, depth: int) -> tuple[Node, int]:
        left, d = self.unary(depth)
        while True:
            op = self.binary_op()
            if op is None or _BINDING[op] <= min_bp:
                return left, d
            pos = self.advance().pos
            if op == "not in":
                self.advance()
            right, rd = self.binary(_BINDING[op], depth + 1)
            if op in _COMPARISONS and self.binary_op() in _COMPARISONS:
                raise self.error(self.tok.pos, "chained comparisons are not supported")
            d = max(d, rd) + 1
            left = self.node(Binary(pos, _CANONICAL.get(op, op), left, right), d)

    def unary(self, depth: int) -> tuple[Node, int]:
        if depth > MAX_DEPTH:
            raise self.error(self.tok.pos, f"expression nested too deeply (more than {MAX_DEPTH})")
        tok = self.tok
        if (tok.kind == "op" and tok.text in ("!", "-", "+")) or (
            tok.kind == "name" and tok.text == "not"
        ):
            self.advance()
            operand, d = self.unary(depth + 1)
            op = _CANONICAL.get(tok.text, tok.text)
            return self.node(Unary(tok.pos, op, operand), d + 1), d + 1
        return self.postfix(depth)

    def postfix(self, depth: int) -> tuple[Node, int]:
        target, d = self.primary(depth)
        while True:
            if self.is_op("["):
                pos = self.advance().pos
                key, kd = self.expr(depth + 1)
                self.expect("]")
                d = max(d, kd) + 1
                target = self.node(Index(pos, target, key), d)
            elif self.is_op("."):
                pos = self.advance().pos
                name = self.tok
                if name.kind != "name":
                    raise self.error(name.pos, "expected a key name after '.'")
                self.check_name(name)
                self.advance()
                d += 1
                target = self.node(Member(pos, target, name.text), d)
            else:
                return target, d

    def check_name(self, tok: Token) -> None:
        if tok.text.startswith("__"):
            raise self.error(tok.pos, f"name {tok.text!r} is not allowed")

    def primary(self, depth: int) -> tuple[Node, int]:
        if depth > MAX_DEPTH:
            raise self.error(self.tok.pos, f"expression nested too deeply (more than {MAX_DEPTH})")
        tok = self.tok
        if tok.kind in ("num", "str"):
            self.advance()
            return self.node(Lit(tok.pos, tok.value), 1), 1
        if tok.kind == "op":
            if tok.text == "(":
                self.advance()
                inner, d = self.expr(depth + 1)
                self.expect(")")
                return inner, d
            if tok.text == "[":
                return self.list_literal(depth)
            if tok.text == "#":
                if self.predicate_depth == 0:
                    raise self.error(tok.pos, "'#' is only allowed inside a {...} predicate")
                self.advance()
                return self.node(Element(tok.pos), 1), 1
            if tok.text == "{":
                raise self.error(tok.pos, "a {...} predicate is only allowed in all/any/none")
            found = tok.text
            raise self.error(tok.pos, f"unexpected {found!r}")
        if tok.kind == "end":
            raise self.error(tok.pos, "unexpected end of input")
        # a name
        self.check_name(tok)
        word = tok.text
        if word in ("true", "false"):
            self.advance()
            return self.node(Lit(tok.pos, word == "true"), 1), 1
        if word == "nil":
            self.advance()
            return self.node(Lit(tok.pos, None), 1), 1
        if word == "result":
            self.advance()
            if self.is_op("("):
                raise self.error(self.tok.pos, "'result' is not a function")
            return self.node(Result(tok.pos), 1), 1
        if word in _FUNCTIONS:
            return self.call(depth)
        if word in _KEYWORDS:
            raise self.error(tok.pos, f"unexpected {word!r}")
        raise self.error(tok.pos, f"unknown name {word!r} (the only variable is 'result')")

    def list_literal(self, depth: int) -> tuple[Node, int]:
        pos = self.advance().pos
        items: list[Node] = []
        d = 0
        if not self.is_op("]"):
            while True:
                item, idepth = self.expr(depth + 1)
                items.append(item)
                d = max(d, idepth)
                if not self.is_op(","):
                    break
                self.advance()
        self.expect("]")
        return self.node(ListExpr(pos, tuple(items)), d + 1), d + 1

    def call(self, depth: int) -> tuple[Node, int]:
        name = self.advance()
        if not self.is_op("("):
            raise self.error(
                self.tok.pos, f"{name.text!r} is a function: call it as {name.text}(...)"
            )
        self.advance()
        low, high, predicates = _FUNCTIONS[name.text]
        args: list[Node] = []
        d = 0
        if not self.is_op(")"):
            while True:
                if len(args) in predicates:
                    arg, ad = self.predicate(depth + 1)
                else:
                    arg, ad = self.expr(depth + 1)
                args.append(arg)
                d = max(d, ad)
                if not self.is_op(","):
                    break
                self.advance()
        self.expect(")")
        if len(args) < low or (high is not None and len(args) > high):
            wanted = f"{low}" if low == high else f"at least {low}"
            raise self.error(name.pos, f"{name.text}() takes {wanted} argument(s), got {len(args)}")
        return self.node(Call(name.pos, name.text, tuple(args)), d + 1), d + 1

    def predicate(self, depth: int) -> tuple[Node, int]:
        if not self.is_op("{"):
            raise self.error(self.tok.pos, "expected a {...} predicate using '#' for the element")
        pos = self.advance().pos
        self.predicate_depth += 1
        body, d = self.expr(depth)
        self.predicate_depth -= 1
        self.expect("}")
        return self.node(Predicate(pos, body), d + 1), d + 1


# ---------------------------------------------------------------------------------------------
# Interpreter

_MISSING: Final = object()


class _Run:
    """State of one evaluation: the step budget and the element stack for predicates."""

    def __init__(self, text: str, result: object) -> None:
        self.text = text
        self.result = result
        self.steps = 0
        self.elements: list[object] = []

    def fail(self, node: Node | int, message: str) -> EvaluationError:
        pos = node if isinstance(node, int) else node.pos
        return EvaluationError(self.text, pos, message)

    def step(self, node: Node, n: int = 1) -> None:
        self.steps += n
        if self.steps > MAX_STEPS:
            raise self.fail(node, f"evaluation budget exceeded ({MAX_STEPS} steps)")

    def eval(self, node: Node) -> object:
        self.step(node)
        if isinstance(node, Lit):
            return node.value
        if isinstance(node, Result):
            return self.result
        if isinstance(node, Element):
            return self.elements[-1]
        if isinstance(node, ListExpr):
            return [self.eval(item) for item in node.items]
        if isinstance(node, Index):
            return self.index(node, self.eval(node.target), self.eval(node.key))
        if isinstance(node, Member):
            target = self.eval(node.target)
            if not isinstance(target, Mapping):
                raise self.fail(
                    node, f"cannot read key {node.key!r} of {_type_name(target)} (not a map)"
                )
            return target.get(node.key)
        if isinstance(node, Unary):
            return self.unary(node, self.eval(node.operand))
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Ternary):
            cond = self.eval(node.cond)
            if not isinstance(cond, bool):
                raise self.fail(node, f"'?' needs a boolean condition, got {_type_name(cond)}")
            return self.eval(node.then if cond else node.other)
        if isinstance(node, Call):
            return self.call(node)
        raise self.fail(node, "a {...} predicate is only allowed in all/any/none")

    def index(self, node: Index, target: object, key: object) -> object:
        if isinstance(target, Mapping):
            if not isinstance(key, str):
                raise self.fail(node, f"map keys are strings, got {_type_name(key)}")
            return target.get(key)
        if isinstance(target, (list, tuple, str)):
            if not _is_int(key):
                raise self.fail(node, f"list index must be an integer, got {_type_name(key)}")
            assert isinstance(key, int)
            if not -len(target) <= key < len(target):
                raise self.fail(node, f"index {key} out of range (length {len(target)})")
            return target[key]
        raise self.fail(node, f"cannot index {_type_name(target)}")

    def unary(self, node: Unary, value: object) -> object:
        if node.op == "!":
            if not isinstance(value, bool):
                raise self.fail(node, f"'!' needs a boolean, got {_type_name(value)}")
            return not value
        if not _is_number(value):
            raise self.fail(node, f"unary {node.op!r} needs a number, got {_type_name(value)}")
        assert isinstance(value, (int, float))
        return self.checked(node, -value if node.op == "-" else value)

    def binary(self, node: Binary) -> object:
        op = node.op
        if op in ("&&", "||"):
            left = self.eval(node.left)
            if not isinstance(left, bool):
                raise self.fail(node, f"{op!r} needs booleans, got {_type_name(left)}")
            if (op == "&&" and not left) or (op == "||" and left):
                return left
            right = self.eval(node.right)
            if not isinstance(right, bool):
                raise self.fail(node, f"{op!r} needs booleans, got {_type_name(right)}")
            return right
        left = self.eval(node.left)
        right = self.eval(node.right)
        if op == "==":
            return self.equal(node, left, right)
        if op == "!=":
            return not self.equal(node, left, right)
        if op in ("in", "not in"):
            found = self.contains(node, right, left)
            return found if op == "in" else not found
        if op in ("<", "<=", ">", ">="):
            return self.order(node, op, left, right)
        return self.arithmetic(node, op, left, right)

    def equal(self, node: Node, a: object, b: object) -> bool:
        self.step(node)
        if _is_number(a) and _is_number(b):
            return a == b
        if a is None or b is None:
            return a is None and b is None
        if isinstance(a, bool) and isinstance(b, bool):
            return a == b
        if isinstance(a, str) and isinstance(b, str):
            return a == b
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(
                self.equal(node, x, y) for x, y in zip(a, b, strict=True)
            )
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            return set(a) == set(b) and all(self.equal(node, a[k], b[k]) for k in a)
        _check_value(self, node, a)
        _check_value(self, node, b)
        return False

    def contains(self, node: Node, container: object, item: object) -> bool:
        if isinstance(container, Mapping):
            if not isinstance(item, str):
                raise self.fail(node, f"map keys are strings, got {_type_name(item)}")
            return item in container
        if isinstance(container, (list, tuple)):
            self.step(node, len(container))
            return any(self.equal(node, item, x) for x in container)
        raise self.fail(node, f"'in' needs a list or map on the right, got {_type_name(container)}")

    def order(self, node: Node, op: str, a: object, b: object) -> bool:
        if _is_number(a) and _is_number(b):
            assert isinstance(a, (int, float)) and isinstance(b, (int, float))
            if (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
                raise self.fail(node, f"cannot compare NaN with {op!r}")
        elif not (isinstance(a, str) and isinstance(b, str)):
            raise self.fail(node, f"cannot compare {_type_name(a)} {op} {_type_name(b)}")
        if op == "<":
            return a < b  # type: ignore[operator]
        if op == "<=":
            return a <= b  # type: ignore[operator]
        if op == ">":
            return a > b  # type: ignore[operator]
        return a >= b  # type: ignore[operator]

    def arithmetic(self, node: Node, op: str, a: object, b: object) -> object:
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            return a + b
        if not (_is_number(a) and _is_number(b)):
            raise self.fail(node, f"cannot compute {_type_name(a)} {op} {_type_name(b)}")
        assert isinstance(a, (int, float)) and isinstance(b, (int, float))
        if op == "+":
            return self.checked(node, a + b)
        if op == "-":
            return self.checked(node, a - b)
        if op == "*":
            return self.checked(node, a * b)
        if op == "/":
            if b == 0:
                raise self.fail(node, "division by zero")
            return float(a) / float(b)
        # "%"
        if not (isinstance(a, int) and isinstance(b, int)):
            raise self.fail(node, "'%' needs integers")
        if b == 0:
            raise self.fail(node, "modulo by zero")
        # Go semantics: the remainder takes the sign of the dividend.
        remainder = abs(a) % abs(b)
        return self.checked(node, -remainder if a < 0 else remainder)

    def checked(self, node: Node, value: int | float) -> int | float:
        if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
            raise self.fail(node, "integer overflow (int64)")
        return value

    def call(self, node: Call) -> object:
        name = node.func
        if name in ("all", "any", "none"):
            return self.quantifier(node)
        args = [self.eval(a) for a in node.args]
        impl = _IMPLS[name]
        return impl(self, node, args)

    def quantifier(self, node: Call) -> bool:
        items = self.eval(node.args[0])
        pred = node.args[1]
        assert isinstance(pred, Predicate)
        if not isinstance(items, (list, tuple)):
            raise self.fail(node, f"{node.func}() needs a list, got {_type_name(items)}")
        for item in items:
            self.elements.append(item)
            try:
                verdict = self.eval(pred.body)
            finally:
                self.elements.pop()
            if not isinstance(verdict, bool):
                raise self.fail(pred, f"predicate must give a boolean, got {_type_name(verdict)}")
            if node.func == "all" and not verdict:
                return False
            if node.func in ("any", "none") and verdict:
                return node.func == "any"
        return node.func != "any"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: object) -> str:
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
        return "list"
    if isinstance(value, Mapping):
        return "map"
    return "unsupported value"


def _check_value(run: _Run, node: Node, value: object) -> None:
    if _type_name(value) == "unsupported value":
        raise run.fail(node, f"unsupported value of type {type(value).__name__}")


def _fn_len(run: _Run, node: Call, args: list[object]) -> object:
    (x,) = args
    if isinstance(x, (str, list, tuple, Mapping)):
        return len(x)
    raise run.fail(node, f"len() needs a string, list or map, got {_type_name(x)}")


def _fn_default(run: _Run, node: Call, args: list[object]) -> object:
    x, d = args
    return d if x is None else x


def _fn_is_nil(run: _Run, node: Call, args: list[object]) -> object:
    return args[0] is None


def _number_arg(run: _Run, node: Call, x: object) -> int | float:
    if not _is_number(x):
        raise run.fail(node, f"{node.func}() needs a number, got {_type_name(x)}")
    assert isinstance(x, (int, float))
    return x


def _fn_is_nan(run: _Run, node: Call, args: list[object]) -> object:
    x = _number_arg(run, node, args[0])
    return isinstance(x, float) and math.isnan(x)


def _fn_is_inf(run: _Run, node: Call, args: list[object]) -> object:
    x = _number_arg(run, node, args[0])
    return isinstance(x, float) and math.isinf(x)


def _fn_as_int(run: _Run, node: Call, args: list[object]) -> object:
    (x,) = args
    if isinstance(x, str):
        text = x.strip()
        if len(text) > MAX_NUMBER_LITERAL:
            raise run.fail(node, "asInt(): string too long")
        try:
            value: int | float = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise run.fail(node, f"asInt(): {x!r} is not a number") from None
        x = value
    number = _number_arg(run, node, x)
    if isinstance(number, float):
        if math.isnan(number) or math.isinf(number):
            raise run.fail(node, f"asInt(): cannot convert {number}")
        number = int(number)
    return run.checked(node, number)


def _fn_as_float(run: _Run, node: Call, args: list[object]) -> object:
    (x,) = args
    if isinstance(x, str):
        if len(x) > MAX_NUMBER_LITERAL:
            raise run.fail(node, "asFloat(): string too long")
        try:
            return float(x.strip())
        except ValueError:
            raise run.fail(node, f"asFloat(): {x!r} is not a number") from None
    return float(_number_arg(run, node, x))


def _fn_abs(run: _Run, node: Call, args: list[object]) -> object:
    return run.checked(node, abs(_number_arg(run, node, args[0])))


def _numbers(run: _Run, node: Call, args: list[object]) -> list[int | float]:
    values: Sequence[object] = args
    if len(args) == 1:
        only = args[0]
        if not isinstance(only, (list, tuple)):
            raise run.fail(node, f"{node.func}() needs a list or several numbers")
        values = only
        run.step(node, len(values))
    if not values:
        raise run.fail(node, f"{node.func}() of an empty list")
    numbers = [_number_arg(run, node, v) for v in values]
    if any(isinstance(v, float) and math.isnan(v) for v in numbers):
        raise run.fail(node, f"{node.func}() of a list containing NaN")
    return numbers


def _fn_min(run: _Run, node: Call, args: list[object]) -> object:
    return min(_numbers(run, node, args))


def _fn_max(run: _Run, node: Call, args: list[object]) -> object:
    return max(_numbers(run, node, args))


def _fn_sum(run: _Run, node: Call, args: list[object]) -> object:
    (x,) = args
    if not isinstance(x, (list, tuple)):
        raise run.fail(node, f"sum() needs a list, got {_type_name(x)}")
    if not x:
        return 0
    total: int | float = 0
    for value in _numbers(run, node, [x]):
        total = run.checked(node, total + value)
    return total


_IMPLS: Final[Mapping[str, Callable[[_Run, Call, list[object]], object]]] = MappingProxyType(
    {
        "len": _fn_len,
        "default": _fn_default,
        "isNil": _fn_is_nil,
        "isNaN": _fn_is_nan,
        "isInf": _fn_is_inf,
        "asInt": _fn_as_int,
        "asFloat": _fn_as_float,
        "abs": _fn_abs,
        "min": _fn_min,
        "max": _fn_max,
        "sum": _fn_sum,
    }
)


# ---------------------------------------------------------------------------------------------
# Public API


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition; immutable and safe to share."""

    text: str
    tree: Node

    def evaluate(self, result: object) -> bool:
        """True/False for this result; EvaluationError if it cannot be decided."""
        run = _Run(self.text, result)
        try:
            value = run.eval(self.tree)
        except RecursionError:
            # Only reachable through a pathologically deep `result` compared with ==.
            raise EvaluationError(self.text, 0, "value nested too deeply") from None
        if not isinstance(value, bool):
            raise EvaluationError(
                self.text, 0, f"condition must give a boolean, got {_type_name(value)}"
            )
        return value

    def __str__(self) -> str:
        return self.text


def compile_condition(text: str) -> Condition:
    """Parse `text`; ConditionSyntaxError (with a 0-based position) if it is not valid."""
    if not isinstance(text, str):
        raise ConditionSyntaxError(repr(text), 0, "a condition must be a string")
    if len(text) > MAX_LENGTH:
        raise ConditionSyntaxError(
            text[:80] + "...", MAX_LENGTH, f"condition longer than {MAX_LENGTH} characters"
        )
    if not text.strip():
        raise ConditionSyntaxError(text, 0, "empty condition")
    try:
        tree = _Parser(text).parse()
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
