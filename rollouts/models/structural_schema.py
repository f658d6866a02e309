"""A model's schema for a CustomResourceDefinition (`model_schema`); the CRDs themselves are
in `rollouts.models.crds`.

Pydantic's JSON schema is turned into a *structural* OpenAPI v3 schema, the only kind
apiextensions.k8s.io/v1 accepts:

- `$ref` / `$defs` are inlined; titles are dropped; `Optional[X]` (`anyOf: [X, null]`) is X.
- `additionalProperties: false` is not allowed in a structural schema and is omitted: the API
  server prunes undeclared fields, and rejects them outright when the client asks for strict
  field validation (kubectl's default `--validate=strict`, Kubernetes >= 1.25), so an
  unsupported Argo field fails with "unknown field" instead of being half-applied.
- `dict[str, Any]` (pod template, job spec) is `type: object` with
  `x-kubernetes-preserve-unknown-fields: true`; `dict[str, str]` is a string map.
- int-or-string fields take the one form Kubernetes allows (`anyOf: [{type: integer},
  {type: string}]` with `x-kubernetes-int-or-string: true`); their constraints (`minimum`,
  `pattern`) move next to the `anyOf`, where they apply to the matching kind of value only.
- Scalar defaults of spec fields are kept (`kubectl explain` shows them and the API server fills
  them in); object and list defaults, and every default under `status`, are dropped: the
  controller reads the status through the models, which apply the same defaults, and the API
  server should not invent status the controller never wrote.
- `status` keeps unknown fields (kopf keeps its progress under `status.kopf`, and a newer
  controller may write fields an older CRD does not declare yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from rollouts.models.cel_rules import rules_for

INT_OR_STRING: Final = "x-kubernetes-int-or-string"
PRESERVE_UNKNOWN: Final = "x-kubernetes-preserve-unknown-fields"
VALIDATIONS: Final = "x-kubernetes-validations"


class UnsupportedSchemaError(ValueError):
    """A model field whose JSON schema has no structural OpenAPI equivalent."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail


class _SchemaGenerator(GenerateJsonSchema):
    """Pydantic's generator, plus each model's CEL rules on its own schema node."""

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        rules = rules_for(schema["cls"])
        if rules:
            json_schema[VALIDATIONS] = [r.to_schema() for r in rules]
        return json_schema


# --- JSON schema -> structural OpenAPI v3 -----------------------------------------------------

# Keys copied as they are.
_KEEP: Final = frozenset(
    {
        "description",
        "type",
        "format",
        "enum",
        "required",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "multipleOf",
        VALIDATIONS,
        PRESERVE_UNKNOWN,
        "x-kubernetes-list-type",
        "x-kubernetes-map-type",
    }
)
# Keys dropped: documentation-only for JSON Schema, or handled by pruning.
_DROP: Final = frozenset({"title", "examples", "$schema", "readOnly", "writeOnly"})
# Value checks of an int-or-string branch that may stand next to the anyOf.
_INT_OR_STRING_CHECKS: Final = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "pattern",
        "minLength",
        "maxLength",
        "format",
    }
)
_NULL: Final = {"type": "null"}

# Order of keys in the output, for readable and stable YAML; unknown keys sort after these.
_KEY_ORDER: Final = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "anyOf",
    INT_OR_STRING,
    "required",
    "properties",
    "additionalProperties",
    "items",
    PRESERVE_UNKNOWN,
    "x-kubernetes-list-type",
    VALIDATIONS,
)


def model_schema(model: type[BaseModel], *, status: bool = False) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one model (the `spec` or `status` of a kind)."""
    raw = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_SchemaGenerator
    )
    defs: Mapping[str, Any] = raw.get("$defs", {})
    root = {k: v for k, v in raw.items() if k != "$defs"}
    return _convert(root, defs, path=model.__name__, status=status)


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Inline `$ref` / single `allOf` and unwrap `Optional`, keeping the outer keys."""
    current = dict(node)
    for _ in range(64):
        if "$ref" in current:
            name = str(current.pop("$ref")).rsplit("/", 1)[-1]
            if name not in defs:
                raise UnsupportedSchemaError(path, f"unknown $ref {name!r}")
            current = {**defs[name], **current}
        elif "allOf" in current and len(current["allOf"]) == 1:
            (inner,) = current.pop("allOf")
            current = {**inner, **current}
        elif "anyOf" in current and not current.get(INT_OR_STRING):
            branches = [b for b in current["anyOf"] if b != _NULL]
            if len(branches) != 1:
                raise UnsupportedSchemaError(
                    path,
                    "a union of several types has no structural form; use one type, "
                    "an int-or-string (x-kubernetes-int-or-string) or dict[str, Any]",
                )
            current.pop("anyOf")
            if current.get("default", 0) is None:
                del current["default"]
            inner = dict(branches[0])
            # The inner node's own description is the model docstring; the field's wins.
            current = {**inner, **current}
        else:
            return current
    raise UnsupportedSchemaError(path, "recursive schema")  # pragma: no cover


def _scalar_default(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _convert(
    node: Mapping[str, Any], defs: Mapping[str, Any], *, path: str, status: bool
) -> dict[str, Any]:
    resolved = _resolve(node, defs, path)
    if resolved.get(INT_OR_STRING):
        return _int_or_string(resolved, defs, path=path, status=status)
    out: dict[str, Any] = {}
    for key, value in resolved.items():
        if key in _DROP:
            continue
        if key == VALIDATIONS:
            out[key] = [{"rule": v["rule"], "message": v["message"]} for v in value]
        elif key in _KEEP:
            out[key] = value
        elif key == "default":
            if not status and _scalar_default(value):
                out[key] = value
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            _exclusive_bound(out, key, value, resolved.get("type"))
        elif key == "properties":
            out[key] = {
                name: _convert(sub, defs, path=f"{path}.{name}", status=status)
                for name, sub in value.items()
            }
        elif key == "items":
            if not isinstance(value, Mapping):
                raise UnsupportedSchemaError(path, "tuple-typed items have no structural form")
            out[key] = _convert(value, defs, path=f"{path}[]", status=status)
        elif key == "additionalProperties":
            if value is True or value == {}:
                out[PRESERVE_UNKNOWN] = True
            elif isinstance(value, Mapping):
                out[key] = _convert(value, defs, path=f"{path}{{}}", status=status)
            # False: unknown fields are pruned (or rejected under strict field validation).
        elif key == "uniqueItems":
            if value:
                out["x-kubernetes-list-type"] = "set"
        else:
            raise UnsupportedSchemaError(path, f"JSON schema keyword {key!r} is not supported")
    if out.get("x-kubernetes-list-type") == "set":
        item_type = out.get("items", {}).get("type")
        if item_type in (None, "object", "array"):
            raise UnsupportedSchemaError(path, "a set must hold scalars (use a list)")
    if "type" not in out and not out.get(PRESERVE_UNKNOWN):
        if set(out) - {"description", "default"}:
            raise UnsupportedSchemaError(path, "a schema without a type")
        # `Any`: any JSON value.
        out[PRESERVE_UNKNOWN] = True
    free_form = not ({"properties", "additionalProperties"} & set(out))
    # A free-form object (dict[str, Any]); an empty model (additionalProperties: false) stays
    # an object without fields.
    if (
        out.get("type") == "object"
        and free_form
        and resolved.get("additionalProperties") is not False
    ):
        out[PRESERVE_UNKNOWN] = True
    if "required" in out and "properties" in out:
        out["required"] = [r for r in out["required"] if r in out["properties"]]
    return ordered(out)


def _exclusive_bound(out: dict[str, Any], key: str, value: Any, type_: Any) -> None:
    bound = "minimum" if key == "exclusiveMinimum" else "maximum"
    if isinstance(value, bool):  # OpenAPI 3.0 form already
        out[key] = value
    elif type_ == "integer" and isinstance(value, int):
        out[bound] = value + 1 if bound == "minimum" else value - 1
    else:
        out[bound] = value
        out[key] = True


def _int_or_string(
    node: Mapping[str, Any], defs: Mapping[str, Any], *, path: str, status: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "description" in node:
        out["description"] = node["description"]
    if not status and _scalar_default(node.get("default")):
        out["default"] = node["default"]
    for branch in node.get("anyOf", ()):
        resolved = _resolve(branch, defs, path)
        for key, value in resolved.items():
            if key in _INT_OR_STRING_CHECKS:
                if key in out and out[key] != value:
                    raise UnsupportedSchemaError(path, f"conflicting {key} in int-or-string")
                if key.startswith("exclusive"):
                    _exclusive_bound(out, key, value, resolved.get("type"))
                else:
                    out[key] = value
            elif key not in ("type", "title", "description"):
                raise UnsupportedSchemaError(
                    path, f"{key!r} in an int-or-string branch has no structural form"
                )
    out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    out[INT_OR_STRING] = True
    return ordered(out)


def ordered(node: Mapping[str, Any]) -> dict[str, Any]:
    rank = {key: i for i, key in enumerate(_KEY_ORDER)}
    return {k: node[k] for k in sorted(node, key=lambda k: (rank.get(k, len(rank)), k))}
