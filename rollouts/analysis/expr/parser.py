"""A Pratt parser from tokens to the syntax tree, with expr-lang's operator precedence.

Grammar (lowest precedence first)::

    expr     := binary [ "?" expr ":" expr ]
    binary   := operand { OP operand }          by binding power:
                  || or (10) · && and (15)
                  == != < <= > >= in matches contains startsWith endsWith, each also
                  after `not` (20; a chain like `a < b < c` is refused)
                  .. (25) · + - (30) · * / % (60) · ** ^ (100, right) · ?? (500)
    unary    := ("!" | "not") binary(50) | ("-" | "+") binary(90) | postfix
    postfix  := primary { "[" expr "]" | "[" [expr] ":" [expr] "]" | "." NAME | "?." NAME }
    primary  := NUMBER | STRING | true | false | nil | result | "#" | "#index" | "." NAME
              | "(" expr ")" | "[" [ expr { "," expr } ] "]" | FUNC "(" args ")"

`#`, `#index` and a leading `.NAME` (the element's key) are only valid inside a predicate:
the second argument of all/any/none/one/filter/map/count/sum/find..., with or without braces.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from rollouts.analysis.expr.budget import MAX_DEPTH, MAX_NODES
from rollouts.analysis.expr.evaluate import compile_regex
from rollouts.analysis.expr.functions import BUILTINS
from rollouts.analysis.expr.lexer import Token, tokenize
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
from rollouts.errors import ConditionSyntaxError

_WORD_OPERATORS: Final = frozenset({"in", "matches", "contains", "startsWith", "endsWith"})
KEYWORDS: Final = frozenset({"and", "or", "not", "true", "false", "nil"} | _WORD_OPERATORS)
COMPARISONS: Final = frozenset(
    {"==", "!=", "<", "<=", ">", ">="} | _WORD_OPERATORS | {f"not {w}" for w in _WORD_OPERATORS}
)
_BINDING: Final[Mapping[str, int]] = MappingProxyType({
    "||": 10, "or": 10,
    "&&": 15, "and": 15,
    **dict.fromkeys(COMPARISONS, 20),
    "..": 25,
    "+": 30, "-": 30,
    "*": 60, "/": 60, "%": 60,
    "**": 100, "^": 100,
    "??": 500,
})  # fmt: skip
_RIGHT_ASSOCIATIVE: Final = frozenset({"**", "^"})
_UNARY_BINDING: Final = MappingProxyType({"!": 50, "not": 50, "-": 90, "+": 90})
_CANONICAL: Final = MappingProxyType({"or": "||", "and": "&&", "not": "!"})


class Parser:
    """One instance per compile, discarded afterwards."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
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

    def check_depth(self, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self.error(self.tok.pos, f"expression nested too deeply (more than {MAX_DEPTH})")

    # -- grammar
    def parse(self) -> Node:
        tree, _ = self.expr(0)
        if self.tok.kind != "end":
            raise self.error(self.tok.pos, f"unexpected {self.tok.text!r}")
        return tree

    def expr(self, depth: int) -> tuple[Node, int]:
        self.check_depth(depth)
        cond, d = self.binary(0, depth)
        if not self.is_op("?"):
            return cond, d
        pos = self.advance().pos
        then, d1 = self.expr(depth + 1)
        self.expect(":")
        other, d2 = self.expr(depth + 1)
        d = max(d, d1, d2) + 1
        return self.node(Ternary(pos, cond, then, other), d), d

    def binary_op(self) -> tuple[str, int] | None:
        """The binary operator at the cursor and how many tokens it spans."""
        tok = self.tok
        if tok.kind == "op" and tok.text in _BINDING:
            return tok.text, 1
        if tok.kind == "name" and (tok.text in ("and", "or") or tok.text in _WORD_OPERATORS):
            return tok.text, 1
        if tok.kind == "name" and tok.text == "not":
            nxt = self.tokens[self.i + 1]
            if nxt.kind == "name" and nxt.text in _WORD_OPERATORS:
                return f"not {nxt.text}", 2
        return None

    def binary(self, min_bp: int, depth: int) -> tuple[Node, int]:
        left, d = self.unary(depth)
        while True:
            found = self.binary_op()
            if found is None or _BINDING[found[0]] <= min_bp:
                return left, d
            op, width = found
            pos = self.tok.pos
            for _ in range(width):
                self.advance()
            # `**` and `^` group to the right: 2 ** 3 ** 2 is 2 ** 9
            right_bp = _BINDING[op] - 1 if op in _RIGHT_ASSOCIATIVE else _BINDING[op]
            right, rd = self.binary(right_bp, depth + 1)
            after = self.binary_op()
            if op in COMPARISONS and after is not None and after[0] in COMPARISONS:
                raise self.error(self.tok.pos, "chained comparisons are not supported")
            d = max(d, rd) + 1
            left = self.node(self.combine(pos, _CANONICAL.get(op, op), left, right), d)

    def combine(self, pos: int, op: str, left: Node, right: Node) -> Node:
        if op in ("matches", "not matches") and isinstance(right, Lit) \
                and isinstance(right.value, str):
            try:
                regex = compile_regex(right.value)
            except ValueError as exc:
                raise self.error(right.pos, str(exc)) from None
            return RegexMatch(pos, left, right.value, regex, negated=op != "matches")
        return Binary(pos, op, left, right)

    def unary(self, depth: int) -> tuple[Node, int]:
        self.check_depth(depth)
        tok = self.tok
        if (tok.kind == "op" and tok.text in ("!", "-", "+")) or (
            tok.kind == "name" and tok.text == "not"
        ):
            self.advance()
            operand, d = self.binary(_UNARY_BINDING[tok.text], depth + 1)
            op = _CANONICAL.get(tok.text, tok.text)
            return self.node(Unary(tok.pos, op, operand), d + 1), d + 1
        return self.postfix(depth)

    def postfix(self, depth: int) -> tuple[Node, int]:
        target, d = self.primary(depth)
        optional = False
        while True:
            if self.is_op("["):
                target, d = self.subscript(target, d, depth)
            elif self.is_op(".") or self.is_op("?."):
                is_optional = self.tok.text == "?."
                optional = optional or is_optional
                pos = self.advance().pos
                name = self.key_name()
                d += 1
                target = self.node(Member(pos, target, name, is_optional), d)
            else:
                if optional:
                    d += 1
                    target = self.node(Chain(target.pos, target), d)
                return target, d

    def subscript(self, target: Node, d: int, depth: int) -> tuple[Node, int]:
        """`target[key]` or the slice `target[low:high]` (either bound may be left out)."""
        pos = self.advance().pos
        low: Node | None = None
        if not self.is_op(":"):
            low, ld = self.expr(depth + 1)
            d = max(d, ld)
            if not self.is_op(":"):
                self.expect("]")
                return self.node(Index(pos, target, low), d + 1), d + 1
        self.expect(":")
        high: Node | None = None
        if not self.is_op("]"):
            high, hd = self.expr(depth + 1)
            d = max(d, hd)
        self.expect("]")
        return self.node(Slice(pos, target, low, high), d + 1), d + 1

    def key_name(self) -> str:
        name = self.tok
        if name.kind != "name":
            raise self.error(name.pos, "expected a key name after '.'")
        self.check_name(name)
        self.advance()
        return name.text

    def check_name(self, tok: Token) -> None:
        if tok.text.startswith("__"):
            raise self.error(tok.pos, f"name {tok.text!r} is not allowed")

    def primary(self, depth: int) -> tuple[Node, int]:
        self.check_depth(depth)
        tok = self.tok
        if tok.kind in ("num", "str"):
            self.advance()
            return self.node(Lit(tok.pos, tok.value), 1), 1
        if tok.kind == "op":
            return self.punctuation(tok, depth)
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
        is_call = self.tokens[self.i + 1].kind == "op" and self.tokens[self.i + 1].text == "("
        if word == "result":
            self.advance()
            if is_call:
                raise self.error(self.tok.pos, "'result' is not a function")
            return self.node(Result(tok.pos), 1), 1
        if word in BUILTINS:
            return self.call(depth)
        if word in KEYWORDS:
            raise self.error(tok.pos, f"unexpected {word!r}")
        if is_call:
            raise self.error(tok.pos, f"unknown function {word!r}")
        raise self.error(tok.pos, f"unknown name {word!r} (the only variable is 'result')")

    def punctuation(self, tok: Token, depth: int) -> tuple[Node, int]:
        if tok.text == "(":
            self.advance()
            inner, d = self.expr(depth + 1)
            self.expect(")")
            return inner, d
        if tok.text == "[":
            return self.list_literal(depth)
        if tok.text in ("#", "#index", "."):
            if self.predicate_depth == 0:
                what = "'.key' without a target" if tok.text == "." else repr(tok.text)
                raise self.error(tok.pos, f"{what} is only allowed inside a predicate")
            self.advance()
            element = self.node(Element(tok.pos, tok.text == "#index"), 1)
            if tok.text != ".":
                return element, 1
            return self.node(Member(tok.pos, element, self.key_name()), 2), 2
        if tok.text == "{":
            raise self.error(tok.pos, "a {...} predicate is only allowed as the second argument "
                             "of all/any/none/one/filter/map/count/sum/find (map literals are "
                             "not supported)")
        raise self.error(tok.pos, f"unexpected {tok.text!r}")

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
                if self.is_op("]"):
                    break  # a trailing comma, as expr-lang allows
        self.expect("]")
        return self.node(ListExpr(pos, tuple(items)), d + 1), d + 1

    def call(self, depth: int) -> tuple[Node, int]:
        name = self.advance()
        if not self.is_op("("):
            raise self.error(
                self.tok.pos, f"{name.text!r} is a function: call it as {name.text}(...)"
            )
        self.advance()
        builtin = BUILTINS[name.text]
        args: list[Node] = []
        d = 0
        if not self.is_op(")"):
            while True:
                if builtin.higher is not None and len(args) == 1:
                    arg, ad = self.predicate(depth + 1)
                else:
                    arg, ad = self.expr(depth + 1)
                args.append(arg)
                d = max(d, ad)
                if not self.is_op(","):
                    break
                self.advance()
        self.expect(")")
        low, high = builtin.low, builtin.high
        if len(args) < low or (high is not None and len(args) > high):
            if low == high:
                wanted = f"{low}"
            elif high is None:
                wanted = f"at least {low}"
            else:
                wanted = f"{low} to {high}"
            raise self.error(name.pos, f"{name.text}() takes {wanted} argument(s), got {len(args)}")
        return self.node(Call(name.pos, name.text, tuple(args)), d + 1), d + 1

    def predicate(self, depth: int) -> tuple[Node, int]:
        """`{ body }` or a bare body: `#`, `#index` and `.key` refer to the element."""
        pos = self.tok.pos
        braced = self.is_op("{")
        if braced:
            self.advance()
        self.predicate_depth += 1
        body, d = self.expr(depth)
        self.predicate_depth -= 1
        if braced:
            self.expect("}")
        return self.node(Predicate(pos, body), d + 1), d + 1
