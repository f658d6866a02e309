"""Conventions shared by every API model.

Field names are camelCase on the wire (as in Argo Rollouts v1alpha1) and snake_case in Python.
Unknown fields are rejected: a field we do not support must never be silently ignored.
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction
from types import MappingProxyType
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

from rollouts.errors import InvalidSpecError


@functools.lru_cache(maxsize=4096)
def _shared_fields_set(fields: frozenset[str]) -> set[str]:
    return set(fields)


def _share_fields_set(model: BaseModel) -> None:
    """Point a model's "fields set" at one set shared by every model set with the same fields.

    pydantic keeps a set of the field names given for each model instance (read through
    `model_fields_set`); at 1,000 Rollouts the ~25,000 models a controller holds between
    passes kept ~10 MiB of such sets (docs/benchmarks.md, "Memory at 1,000 Rollouts, round
    4"). Our models are frozen, so nothing adds to the set in place: pydantic copies it
    before a `model_copy(update=...)` changes it.
    """
    object.__setattr__(model, "__pydantic_fields_set__",
                       _shared_fields_set(frozenset(model.__pydantic_fields_set__)))


class ApiModel(BaseModel):
    """Base of spec models: camelCase aliases, unknown fields forbidden."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    def model_post_init(self, context: Any, /) -> None:
        _share_fields_set(self)

    def to_wire(self) -> dict[str, Any]:
        """The manifest form: camelCase keys, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class StatusModel(BaseModel):
    """Base of status models: tolerant of fields written by newer controllers."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )

    def model_post_init(self, context: Any, /) -> None:
        _share_fields_set(self)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# The longest duration or number of seconds a spec may hold. Far beyond any sensible pause,
# deadline or interval, and small enough that `now + duration` always stays a valid datetime
# (an int64-sized value would overflow it and wedge the Rollout instead of being refused).
MAX_DURATION_SECONDS: Final = 10 * 365 * 24 * 3600  # 87600h, ten years
MAX_DURATION_TEXT: Final = "87600h (10 years)"

# Counts (replicas, limits) are int32 in Kubernetes and Argo Rollouts.
MAX_INT32: Final = 2**31 - 1

# Go's time.ParseDuration grammar without a sign: one or more decimal numbers, each with a unit
# (ns, us, µs, ms, s, m, h), in any order ("1h30m", "1.5h", "90s", "5s5m"); plus a bare
# integer, read as seconds (as Argo Rollouts reads an integer string). The CRDs carry the same
# pattern, so the API server and the controller accept exactly the same strings.
_UNIT = "(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h)"  # µs with the micro sign or Greek mu, as Go
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
DURATION_PATTERN: Final = rf"^(?:[0-9]+|(?:{_NUMBER}{_UNIT})+)$"
_DURATION = re.compile(DURATION_PATTERN)
_DURATION_PART = re.compile(rf"({_NUMBER})({_UNIT})")
_UNIT_SECONDS: Final = MappingProxyType({
    "ns": Fraction(1, 10**9), "us": Fraction(1, 10**6), "\u00b5s": Fraction(1, 10**6),
    "\u03bcs": Fraction(1, 10**6), "ms": Fraction(1, 1000), "s": Fraction(1), "m": Fraction(60),
    "h": Fraction(3600),
})
_DURATION_HINT = "use seconds (30) or Go duration units (30s, 5m, 1h30m, 1.5h)"


def parse_duration(value: object) -> int:
    """Seconds from an int or a Go-style duration string ("30s", "5m", "1h30m").

    Sub-second parts are accepted and rounded up to whole seconds, as pause lengths are
    counted in seconds. Negative, malformed or longer-than-MAX_DURATION_SECONDS values raise
    ValueError.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("a duration is an integer number of seconds or a string like '30s'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration must not be negative")
        return _bounded(value)
    if _DURATION.fullmatch(value) is None:
        raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}")
    if value.isdigit():
        return _bounded(int(value))
    total = sum((Fraction(number) * _UNIT_SECONDS[unit]
                 for number, unit in _DURATION_PART.findall(value)), Fraction(0))
    return _bounded(math.ceil(total))


def _bounded(seconds: int) -> int:
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"a duration must be at most {MAX_DURATION_TEXT}")
    return seconds


def _keep_duration(value: object) -> object:
    parse_duration(value)
    return value


# A duration kept as the user wrote it (so a round trip does not rewrite their manifest),
# validated on the way in; read its length with `parse_duration`.
Duration = Annotated[
    int | str,
    BeforeValidator(_keep_duration),
    PlainSerializer(lambda v: v),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_DURATION_SECONDS},
                      {"type": "string", "pattern": DURATION_PATTERN, "maxLength": 64}],
        }
    ),
]

# An int or a percentage string ("25%"), as maxSurge / maxUnavailable.
def _check_int_or_percent(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("expected an integer or a percentage like '25%'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if isinstance(value, str) and re.fullmatch(r"\d+%", value):
        return value
    raise ValueError("expected an integer or a percentage like '25%'")


IntOrPercent = Annotated[
    int | str,
    BeforeValidator(_check_int_or_percent),
    PlainSerializer(lambda v: v),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string",
                      "pattern": r"^[0-9]+%$"}],
        }
    ),
]


def resolve_int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """The absolute number a maxSurge/maxUnavailable value stands for, out of `total`."""
    if isinstance(value, int):
        return value
    percent = int(value.rstrip("%"))
    scaled = total * percent
    return -(-scaled // 100) if round_up else scaled // 100


PLACEHOLDER = re.compile(r"\{\{\s*[A-Za-z0-9_.\-]+\s*\}\}")


def duration_value(value: int | str, field: str) -> int:
    """Seconds an ArgDuration stands for; InvalidSpecError if it is still a placeholder."""
    if has_placeholder(value):
        raise InvalidSpecError(field, f"{value!r} is not a duration (unresolved argument?)")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidSpecError(field, str(exc)) from None


def has_placeholder(value: object) -> bool:
    """Whether `value` is a string holding a `{{...}}` placeholder (an argument)."""
    return isinstance(value, str) and PLACEHOLDER.search(value) is not None


def _check_arg_duration(value: object) -> object:
    if not has_placeholder(value):
        parse_duration(value)
    return value


# A Duration that may also be a `{{args.name}}` placeholder, as Argo substitutes arguments
# into every string of a metric before reading it (`interval: "{{args.interval}}"`). The
# value is checked as a duration once the argument is substituted (AnalysisRun creation).
ArgDuration = Annotated[
    int | str,
    BeforeValidator(_check_arg_duration),
    PlainSerializer(lambda v: v),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^(([0-9]+(h|m|s|ms)?)+|.*\{\{.*\}\}.*)$"},
            ],
        }
    ),
]
