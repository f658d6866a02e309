"""Custom resources checked against their CRD's structural schema, as kube-apiserver does.

On every create and update of a custom resource a real API server
1. finds the fields the schema does not declare: with `?fieldValidation=Strict` (kubectl's
   default) the request fails with 400 `strict decoding error: unknown field "spec.x"`;
   otherwise they are pruned (dropped silently) -- except under
   `x-kubernetes-preserve-unknown-fields: true`; `null` in a non-nullable field is dropped too;
2. validates what is left -- type, enum, pattern, minimum/maximum, minLength/maxLength,
   minItems/maxItems, required -- and the CEL rules (`x-kubernetes-validations`), answering
   422 Invalid with one cause per problem, worded as kube-openapi and apiextensions word them
   (`spec.replicas: Invalid value: -5: spec.replicas in body should be greater than or equal
   to 0`). Patterns are matched with RE2, the syntax Go's regexp (and so the server) uses.

Not emulated: defaulting (`default` values are not filled in), `format`, `anyOf`/`oneOf`
value validations other than int-or-string, `uniqueItems`, list-type/map-type checks,
`messageExpression`, and transition rules (a rule that reads `oldSelf` is skipped).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

import celpy
import re2
from celpy.adapter import json_to_cel

from rollouts.sandbox.apierrors import FieldError

Obj = dict[str, Any]
# Compiled CEL programs by rule text; owned by the emulator (one cache per instance).
# A compiled rule: its verdict on a value given as canonical JSON -- True, False, or the
# evaluation error's text. Memoised: CEL is pure, and most writes (every status write, and
# Rollouts made from one template) carry subtrees the rule has already judged.
Programs = dict[str, Callable[[str], bool | str]]
_VERDICTS_PER_RULE: Final = 4096

_ROOT_META: Final = frozenset({"apiVersion", "kind", "metadata"})
_CEL_REASONS: Final = {"FieldValueInvalid": "Invalid", "FieldValueForbidden": "Forbidden",
                       "FieldValueRequired": "Required", "FieldValueDuplicate": "Duplicate"}


def json_type(value: Any) -> str:
    """The OpenAPI type name of a decoded JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class Checked:
    """The outcome of checking one object: the pruned object, unknown fields, errors."""

    def __init__(self) -> None:
        self.unknown: list[str] = []
        self.errors: list[FieldError] = []


def check(obj: Obj, schema: Mapping[str, Any], programs: Programs) -> tuple[Obj, Checked]:
    """Prune `obj` to `schema` and validate it; metadata, apiVersion and kind are left alone."""
    checked = Checked()
    body = {k: v for k, v in obj.items() if k not in _ROOT_META}
    pruned = _walk(body, schema, "", checked, programs)
    out = {k: v for k, v in obj.items() if k in _ROOT_META}
    out.update(pruned if isinstance(pruned, dict) else {})
    return out, checked


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _walk(value: Any, schema: Mapping[str, Any], path: str, checked: Checked,
          programs: Programs) -> Any:
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, int | str) or isinstance(value, bool):
            checked.errors.append(_type_error(path, "integer,string", value))
            return value
        _scalar_checks(value, schema, path, checked)
        return value
    wanted = schema.get("type")
    if wanted is not None and not _has_type(value, wanted):
        checked.errors.append(_type_error(path, wanted, value))
        return value
    if isinstance(value, dict):
        value = _object(value, schema, path, checked, programs)
    elif isinstance(value, list):
        value = _array(value, schema, path, checked, programs)
    else:
        _scalar_checks(value, schema, path, checked)
    _cel(value, schema, path, checked, programs)
    return value


def _has_type(value: Any, wanted: str) -> bool:
    actual = json_type(value)
    return actual == wanted or (wanted == "number" and actual == "integer")


def _type_error(path: str, wanted: str, value: Any) -> FieldError:
    actual = json_type(value)
    return FieldError("TypeInvalid", path, f'{path} in body must be of type {wanted}: "{actual}"',
                      actual)


def _object(value: Obj, schema: Mapping[str, Any], path: str, checked: Checked,
            programs: Programs) -> Obj:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    out: Obj = {}
    for key, item in value.items():
        sub = properties.get(key)
        if sub is None and isinstance(additional, Mapping):
            sub = additional
            item_path = f"{path}[{key}]"
        else:
            item_path = _join(path, key)
        if sub is None:
            if preserve:
                out[key] = item
            else:
                checked.unknown.append(item_path)
            continue
        if item is None and not sub.get("nullable"):
            continue  # pruned, as a real server prunes nulls in non-nullable fields
        out[key] = _walk(item, sub, item_path, checked, programs)
    for key in schema.get("required") or ():
        if key not in out:
            checked.errors.append(FieldError("Required", _join(path, key)))
    _count_checks(len(out), schema, path, checked, "minProperties", "maxProperties")
    return out


def _array(value: list[Any], schema: Mapping[str, Any], path: str, checked: Checked,
           programs: Programs) -> list[Any]:
    items = schema.get("items")
    out = [(_walk(item, items, f"{path}[{i}]", checked, programs)
            if isinstance(items, Mapping) else item) for i, item in enumerate(value)]
    _count_checks(len(out), schema, path, checked, "minItems", "maxItems")
    return out


def _count_checks(count: int, schema: Mapping[str, Any], path: str, checked: Checked,
                  low: str, high: str) -> None:
    noun = "items" if low == "minItems" else "properties"
    if low in schema and count < schema[low]:
        checked.errors.append(FieldError(
            "Invalid", path, f"{path} in body should have at least {schema[low]} {noun}", count))
    if high in schema and count > schema[high]:
        checked.errors.append(FieldError(
            "TooMany", path, f"must have at most {schema[high]} {noun}", count))


def _scalar_checks(value: Any, schema: Mapping[str, Any], path: str, checked: Checked) -> None:
    errors = checked.errors
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in schema["enum"])
        errors.append(FieldError("NotSupported", path, f"supported values: {allowed}", value))
        return
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(FieldError(
                "TooLong", path, f"may not be more than {schema['maxLength']} bytes", value))
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(FieldError(
                "Invalid", path,
                f"{path} in body should be at least {schema['minLength']} chars long", value))
        if "pattern" in schema and re2.search(schema["pattern"], value) is None:
            errors.append(FieldError(
                "Invalid", path, f"{path} in body should match '{schema['pattern']}'", value))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _bound_checks(value, schema, path, errors)


def _bound_checks(value: float, schema: Mapping[str, Any], path: str,
                  errors: list[FieldError]) -> None:
    if "minimum" in schema:
        low, exclusive = schema["minimum"], bool(schema.get("exclusiveMinimum"))
        if value < low or (exclusive and value == low):
            relation = "greater than" if exclusive else "greater than or equal to"
            errors.append(FieldError(
                "Invalid", path, f"{path} in body should be {relation} {_number(low)}", value))
    if "maximum" in schema:
        high, exclusive = schema["maximum"], bool(schema.get("exclusiveMaximum"))
        if value > high or (exclusive and value == high):
            relation = "less than" if exclusive else "less than or equal to"
            errors.append(FieldError(
                "Invalid", path, f"{path} in body should be {relation} {_number(high)}", value))


def _number(bound: float) -> str:
    return str(int(bound)) if isinstance(bound, float) and math.isfinite(bound) \
        and bound.is_integer() else str(bound)


def _cel(value: Any, schema: Mapping[str, Any], path: str, checked: Checked,
         programs: Programs) -> None:
    for rule in schema.get("x-kubernetes-validations") or ():
        text = str(rule.get("rule", ""))
        if not text or "oldSelf" in text:
            continue
        program = programs.get(text)
        if program is None:
            program = programs[text] = _program(text)
        where = path
        if rule.get("fieldPath"):
            where = path + str(rule["fieldPath"])
        kind = _CEL_REASONS.get(str(rule.get("reason") or "FieldValueInvalid"), "Invalid")
        verdict = program(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str))
        if isinstance(verdict, str):
            checked.errors.append(FieldError("Invalid", where, f"{text}: {verdict}",
                                             json_type(value)))
            continue
        if not verdict:
            message = str(rule.get("message") or f"failed rule: {text}")
            checked.errors.append(FieldError(kind, where, message, json_type(value)))


def _program(text: str) -> Callable[[str], bool | str]:
    """Compile a rule into a memoised judge of canonical-JSON values."""
    env = celpy.Environment()
    evaluate = env.program(env.compile(text)).evaluate

    @functools.lru_cache(maxsize=_VERDICTS_PER_RULE)
    def judge(document: str) -> bool | str:
        try:
            verdict = evaluate({"self": json_to_cel(json.loads(document))})
        except Exception as e:  # celpy raises its own errors for a failed evaluation
            return str(e)
        return not isinstance(verdict, Exception) and bool(verdict)

    return judge
