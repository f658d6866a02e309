"""Tokens of the condition language (a hand-written scanner: input never reaches eval)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from rollouts.analysis.expr.budget import INT_MAX, MAX_NUMBER_LITERAL, MAX_STRING_LITERAL
from rollouts.errors import ConditionSyntaxError

TokenKind = Literal["num", "str", "name", "op", "end"]


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    pos: int
    value: object = None


# Longest first so that "<=" wins over "<" and "??" over "?".
_OPERATORS: Final = (
    "#index", "&&", "||", "==", "!=", "<=", ">=", "??", "?.", "..", "**",
    "<", ">", "^", "+", "-", "*", "/", "%", "!", "?", ":", ",", ".", "(", ")", "[", "]", "{", "}",
    "#",
)  # fmt: skip
_ESCAPES: Final = MappingProxyType(
    {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", "0": "\0"}
)
_DIGITS: Final = frozenset("0123456789")
_HEX: Final = frozenset("0123456789abcdefABCDEF")


def _is_digit(ch: str) -> bool:
    # str.isdigit() also accepts characters such as '¹' that int() refuses.
    return ch in _DIGITS


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        start = i
        if _is_digit(ch) or (ch == "." and i + 1 < n and _is_digit(text[i + 1])
                             and not (tokens and tokens[-1].text == "?.")):
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
        for op in _OPERATORS:
            if text.startswith(op, i):
                if op == "?." and i + 2 < n and _is_digit(text[i + 2]):
                    continue  # `a ?.5 : 1` is a ternary with .5, not optional chaining
                if op == "#index" and i + 6 < n and (text[i + 6].isalnum() or text[i + 6] == "_"):
                    continue
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
            nxt = text[i + 1] if i + 1 < n else ""
            if nxt == "u" and i + 6 <= n and all(c in _HEX for c in text[i + 2 : i + 6]):
                code = int(text[i + 2 : i + 6], 16)
                if 0xD800 <= code <= 0xDFFF:
                    raise ConditionSyntaxError(text, i, "invalid escape in string (surrogate)")
                out.append(chr(code))
                i += 6
            elif nxt and nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
            else:
                raise ConditionSyntaxError(text, i, "invalid escape in string")
        else:
            out.append(ch)
            i += 1
        if len(out) > MAX_STRING_LITERAL:
            raise ConditionSyntaxError(text, start, "string literal too long")
    raise ConditionSyntaxError(text, start, "unterminated string")
