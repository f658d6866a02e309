"""The OpenAPI documents kubectl downloads before `apply` and `explain`.

kubectl (>= 1.27) reads `/openapi/v3` (one entry per group-version) and then the document of
each group-version it writes to. It validates on the server when a PATCH operation of the
kind's path lists the `fieldValidation` query parameter (sending `?fieldValidation=Strict`),
and otherwise validates on the client against `components.schemas`; without any document it
refuses to apply ("failed to download openapi") unless told `--validate=false`.

Schemas: a custom resource's is its CRD's `openAPIV3Schema`; a built-in kind's is an object that
keeps unknown fields (the emulator does not carry Kubernetes' full built-in schemas). Each
carries `x-kubernetes-group-version-kind`, and schema names follow Kubernetes' (reversed group:
`dev.rollouts.v1alpha1.Rollout`, `io.k8s.api.apps.v1.ReplicaSet`). `/openapi/v2` serves the
same paths and definitions as one Swagger 2.0 document in JSON (kubectl asks it for protobuf,
which is not served, and falls back to v3).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

Obj = dict[str, Any]

_WRITE_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation")


class Resource(Protocol):
    @property
    def group(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def plural(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def namespaced(self) -> bool: ...


def schema_name(group: str, version: str, kind: str) -> str:
    """Kubernetes' definition name for a kind: the group's domain reversed, then version.kind."""
    if not group:
        prefix = "io.k8s.api.core"
    elif "." not in group:
        prefix = f"io.k8s.api.{group}"
    elif group.endswith(".k8s.io") and group != "apiextensions.k8s.io":
        prefix = f"io.k8s.api.{group.removesuffix('.k8s.io').replace('.', '_')}"
    else:
        prefix = ".".join(reversed(group.split(".")))
    return f"{prefix}.{version}.{kind}"


def gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _gvk(resource: Resource) -> Obj:
    return {"group": resource.group, "version": resource.version, "kind": resource.kind}


def _query(name: str) -> Obj:
    return {"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}


def _operations(resource: Resource, ref: str) -> tuple[str, Obj, str, Obj]:
    base = f"/{gv_path(resource.group, resource.version)}"
    if resource.namespaced:
        base += "/namespaces/{namespace}"
    collection, item = f"{base}/{resource.plural}", f"{base}/{resource.plural}/{{name}}"
    gvk = _gvk(resource)
    body = {"content": {"application/json": {"schema": {"$ref": ref}}}}
    answer = {"200": {"description": "OK", "content": {"application/json": {
        "schema": {"$ref": ref}}}}}

    def op(verb: str, action: str, *, write: bool, patch: bool = False) -> Obj:
        out: Obj = {"operationId": f"{verb}{resource.kind}",
                    "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
                    "responses": answer}
        if write:
            out["parameters"] = [_query(p) for p in _WRITE_PARAMETERS]
            out["requestBody"] = ({"content": {t: {"schema": {"type": "object"}} for t in (
                "application/json-patch+json", "application/merge-patch+json",
                "application/apply-patch+yaml")}} if patch else body)
        return out

    path_params = [{"name": "name", "in": "path", "required": True,
                    "schema": {"type": "string"}}]
    if resource.namespaced:
        path_params.append({"name": "namespace", "in": "path", "required": True,
                            "schema": {"type": "string"}})
    items: Obj = {"get": op("read", "get", write=False), "put": op("replace", "put", write=True),
                  "patch": op("patch", "patch", write=True, patch=True),
                  "delete": op("delete", "delete", write=False), "parameters": path_params}
    listing: Obj = {"get": op("list", "list", write=False),
                    "post": op("create", "post", write=True)}
    if resource.namespaced:
        listing["parameters"] = path_params[1:]
    return collection, listing, item, items


def group_version_document(resources: Iterable[Resource],
                           schemas: Mapping[str, Mapping[str, Any]],
                           server_version: str) -> Obj:
    """The OpenAPI 3.0 document of one group-version; `schemas` maps a kind to its CRD
    schema (built-in kinds get an open object)."""
    paths: Obj = {}
    components: Obj = {}
    for resource in resources:
        name = schema_name(resource.group, resource.version, resource.kind)
        schema = dict(schemas.get(resource.kind) or {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True})
        schema["x-kubernetes-group-version-kind"] = [_gvk(resource)]
        components[name] = schema
        collection, listing, item, items = _operations(resource,
                                                       f"#/components/schemas/{name}")
        paths[collection] = listing
        paths[item] = items
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": server_version},
            "paths": paths, "components": {"schemas": components}}


def document_hash(document: Obj) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32].upper()


def v3_root(documents: Mapping[tuple[str, str], Obj]) -> Obj:
    """`/openapi/v3`: where each group-version's document is, with a hash to cache it by."""
    return {"paths": {
        gv_path(group, version): {
            "serverRelativeURL": f"/openapi/v3/{gv_path(group, version)}"
                                 f"?hash={document_hash(doc)}"}
        for (group, version), doc in sorted(documents.items())}}


def swagger_v2(documents: Iterable[Obj], server_version: str) -> Obj:
    """`/openapi/v2`: every group-version's paths and schemas in one Swagger 2.0 document."""
    paths: Obj = {}
    definitions: Obj = {}
    for doc in documents:
        definitions.update(doc["components"]["schemas"])
        text = json.dumps(doc["paths"]).replace("#/components/schemas/", "#/definitions/")
        paths.update(json.loads(text))
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": server_version},
            "paths": paths, "definitions": definitions}
