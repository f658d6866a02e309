"""Conventions shared by every API model.

Field names are camelCase on the wire (as in Argo Rollouts v1alpha1) and snake_case in Python.
Unknown fields are rejected: a field we do not support must never be silently ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

from rollouts.errors import InvalidSpecError


class ApiModel(BaseModel):
    """Base of spec models: camelCase aliases, unknown fields forbidden."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

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

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")


def parse_duration(value: object) -> int:
    """Seconds from an int or a Go-style duration string ("30s", "5m", "1h30m").

    Sub-second parts are accepted and rounded up to whole seconds, as pause lengths are
    counted in seconds. Negative or malformed values raise ValueError.
    """
    if isinstance(value, bool):
        raise ValueError("a duration is an integer number of seconds or a string like '30s'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration must not be negative")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        match = _DURATION.match(text)
        if not text or match is None or not any(match.groups()):
            raise ValueError(
                f"invalid duration {value!r}: use seconds (30) or a unit (30s, 5m, 1h)"
            )
        hours, minutes, seconds, millis = (int(g) if g else 0 for g in match.groups())
        total_ms = ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis
        return -(-total_ms // 1000)
    raise ValueError("a duration is an integer number of seconds or a string like '30s'")


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
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string",
                      "pattern": r"^([0-9]+(h|m|s|ms)?)+$"}],
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
