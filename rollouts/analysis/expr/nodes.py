"""The syntax tree the parser builds and the evaluator walks (immutable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias


@dataclass(frozen=True, slots=True)
class Lit:
    pos: int
    value: object


@dataclass(frozen=True, slots=True)
class Result:
    pos: int


@dataclass(frozen=True, slots=True)
class Element:
    """`#` (the current element of a predicate) or `#index` (its position)."""

    pos: int
    index: bool = False


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
class Slice:
    """`target[low:high]`; a missing bound is the start or the end."""

    pos: int
    target: Node
    low: Node | None
    high: Node | None


@dataclass(frozen=True, slots=True)
class Member:
    """`target.key`; with `optional` (`target?.key`) a nil target ends the chain with nil."""

    pos: int
    target: Node
    key: str
    optional: bool = False


@dataclass(frozen=True, slots=True)
class Chain:
    """A member/index chain containing `?.`: where it short-circuits, the chain is nil."""

    pos: int
    body: Node


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
class RegexMatch:
    """`target matches "literal"`: the pattern compiled (and checked) once, when parsing."""

    pos: int
    target: Node
    pattern: str
    regex: Any = field(compare=False)  # `pattern` compiled by RE2
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Call:
    pos: int
    func: str
    args: tuple[Node, ...]


Node: TypeAlias = (
    Lit | Result | Element | ListExpr | Index | Slice | Member | Chain | Unary | Binary | Ternary
    | Predicate | Call | RegexMatch
)
