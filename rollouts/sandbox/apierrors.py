"""The error answers of the API emulator, shaped like kube-apiserver's.

Each constructor mirrors one function of k8s.io/apimachinery/pkg/api/errors (NewNotFound,
NewAlreadyExists, NewConflict, NewInvalid, NewBadRequest, NewGenericServerResponse...): same
HTTP code, `reason`, `message` and `details` -- clients (kubectl, kopf, the kubernetes Python
client) show the message and branch on code and reason, so both must be what a real server
sends. `details` drops empty fields as Go's `omitempty` does; a generic answer carries an empty
`details: {}` as the real one does.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, Final

Obj = dict[str, Any]

# NewGenericServerResponse's fixed messages, by code (what a real server answers when it has
# nothing more specific, e.g. an unknown path or a JSON patch that does not apply).
GENERIC_MESSAGES: Final = {
    400: "the server rejected our request for an unknown reason",
    404: "the server could not find the requested resource",
    405: "the server does not allow this method on the requested resource",
    406: "the server was unable to respond with a content type that the client supports",
    409: "the server reported a conflict",
    422: "the server rejected our request due to an error in our request",
}
_GENERIC_REASONS: Final = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed",
                           406: "NotAcceptable",
                           409: "Conflict", 422: "Invalid"}
STALE_OBJECT: Final = ("the object has been modified; please apply your changes to the latest "
                       "version and try again")


class ApiError(Exception):
    """A failure answered as a ``Status`` object; raised by the in-process API too."""

    def __init__(self, code: int, reason: str, message: str, *,
                 details: Obj | None = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = {k: v for k, v in self.details.items() if v not in ("", None, [])}
        return body


def qualified_resource(group: str, resource: str) -> str:
    """GroupResource.String(): `replicasets.apps`, or `pods` for the core group."""
    return f"{resource}.{group}" if group else resource


def qualified_kind(group: str, kind: str) -> str:
    """GroupKind.String(): `Rollout.rollouts.dev`, or `Pod` for the core group."""
    return f"{kind}.{group}" if group else kind


def not_found(group: str, resource: str, name: str) -> ApiError:
    return ApiError(404, "NotFound",
                    f'{qualified_resource(group, resource)} "{name}" not found',
                    details={"name": name, "group": group, "kind": resource})


def already_exists(group: str, resource: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists",
                    f'{qualified_resource(group, resource)} "{name}" already exists',
                    details={"name": name, "group": group, "kind": resource})


def conflict(group: str, resource: str, name: str, why: str = STALE_OBJECT) -> ApiError:
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {qualified_resource(group, resource)} '
                    f'"{name}": {why}',
                    details={"name": name, "group": group, "kind": resource})


def forbidden(message: str, details: Obj | None) -> ApiError:
    return ApiError(403, "Forbidden", message, details=details if details is not None else {})


def bad_request(message: str) -> ApiError:
    """NewBadRequest: no details."""
    return ApiError(400, "BadRequest", message)


def generic(code: int) -> ApiError:
    """NewGenericServerResponse with no resource: the fixed message and `details: {}`."""
    return ApiError(code, _GENERIC_REASONS[code], GENERIC_MESSAGES[code], details={})


def unsupported_media_type(accepted: Sequence[str]) -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types "
                    f"include: {', '.join(accepted)}")


# --- field errors (k8s.io/apimachinery/pkg/util/validation/field) ---------------------------

_OMIT: Final = object()
# ErrorType -> (its text, the StatusCause reason it becomes)
_TYPES: Final = {
    "Required": ("Required value", "FieldValueRequired"),
    "Invalid": ("Invalid value", "FieldValueInvalid"),
    "TypeInvalid": ("Invalid value", "FieldValueTypeInvalid"),
    "NotSupported": ("Unsupported value", "FieldValueNotSupported"),
    "Forbidden": ("Forbidden", "FieldValueForbidden"),
    "TooLong": ("Too long", "FieldValueTooLong"),
    "TooMany": ("Too many", "FieldValueTooMany"),
    "Duplicate": ("Duplicate value", "FieldValueDuplicate"),
}
_NO_VALUE_TYPES: Final = frozenset({"Required", "Forbidden", "TooLong"})


class GoLiteral(str):
    """A bad value printed as Go prints it with %#v, unquoted (e.g. `0x0` for a uint64 0)."""


def go_value(value: Any) -> str:
    """A bad value as field.Error prints it: strings quoted, numbers and bools bare."""
    if isinstance(value, GoLiteral):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One field.Error: `spec.replicas: Invalid value: -5: ...in body should be >= 0`."""

    type: str  # a key of _TYPES
    field: str
    detail: str = ""
    value: Any = _OMIT

    def body(self) -> str:
        text = _TYPES[self.type][0]
        if self.type not in _NO_VALUE_TYPES and self.value is not _OMIT:
            text = f"{text}: {go_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"

    def cause(self) -> Obj:
        return {"reason": _TYPES[self.type][1], "message": self.body(), "field": self.field}


def invalid(group: str, kind: str, name: str, errors: Sequence[FieldError]) -> ApiError:
    """NewInvalid: 422, the errors aggregated into the message and listed as causes."""
    texts: list[str] = []
    for error in errors:
        if str(error) not in texts:
            texts.append(str(error))
    summary = texts[0] if len(texts) == 1 else f"[{', '.join(texts)}]"
    message = f'{qualified_kind(group, kind)} "{name}" is invalid'
    return ApiError(422, "Invalid", f"{message}: {summary}" if texts else message,
                    details={"name": name, "group": group, "kind": kind,
                             "causes": [e.cause() for e in errors]})
