"""What the API emulator answers about itself: ``/version``, the discovery documents
(``/apis``, ``/apis/G``, ``/api/v1`` and ``/apis/G/V`` resource lists) and the OpenAPI
documents built from the served resources and the CRDs' schemas (``rollouts.sandbox.openapi``
writes them). Pure functions of the resources served and the stored CRDs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

from rollouts.sandbox import apierrors, openapi
from rollouts.sandbox.resources import ResourceInfo

Obj = dict[str, Any]
# (group, version, plural) -> the resource, as the store keeps them.
Resources = Mapping[tuple[str, str, str], ResourceInfo]

SERVER_VERSION: Final = MappingProxyType({
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.22",
    "compiler": "gc",
    "platform": "linux/amd64",
})


def openapi_document(resources: Resources, crds: Iterable[Obj], parts: list[str]) -> Obj:
    """/openapi/v2, /openapi/v3 and /openapi/v3/{api/v1 | apis/G/V} (see openapi.py)."""
    by_gv: dict[tuple[str, str], list[ResourceInfo]] = {}
    for info in resources.values():
        by_gv.setdefault((info.group, info.version), []).append(info)
    schemas: dict[tuple[str, str, str], Obj] = {}
    for crd in crds:
        spec = crd.get("spec", {})
        for version in spec.get("versions") or []:
            found = (version.get("schema") or {}).get("openAPIV3Schema")
            if isinstance(found, dict):
                schemas[(spec.get("group", ""), version.get("name", ""),
                         spec.get("names", {}).get("kind", ""))] = found
    release = SERVER_VERSION["gitVersion"]
    documents = {
        (group, version): openapi.group_version_document(
            infos, {kind: s for (g, v, kind), s in schemas.items()
                    if (g, v) == (group, version)}, release)
        for (group, version), infos in by_gv.items()}
    if parts == ["v2"]:
        return openapi.swagger_v2(documents.values(), release)
    if parts == ["v3"]:
        return openapi.v3_root(documents)
    if parts[:1] == ["v3"]:
        rest = parts[1:]
        wanted = (("", rest[1]) if rest[:1] == ["api"] and len(rest) == 2 else
                  (rest[1], rest[2]) if rest[:1] == ["apis"] and len(rest) == 3 else None)
        if wanted is not None and wanted in documents:
            return documents[wanted]
    raise apierrors.generic(404)


def _group_versions(resources: Resources) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for group, version, _ in resources:
        versions = groups.setdefault(group, [])
        if version not in versions:
            versions.append(version)
    return groups


def api_group(resources: Resources, group: str) -> Obj:
    """The APIGroup document of /apis/G: its versions, the preferred one first."""
    versions = _group_versions(resources).get(group)
    if not versions or group == "":
        raise apierrors.generic(404)
    ordered = sorted(versions, key=_version_priority)
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in ordered],
        "preferredVersion": {"groupVersion": f"{group}/{ordered[0]}", "version": ordered[0]},
    }


def api_group_list(resources: Resources) -> Obj:
    """The APIGroupList document of /apis."""
    groups = [api_group(resources, g) for g in sorted(_group_versions(resources)) if g]
    for g in groups:
        del g["kind"], g["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(resources: Resources, group: str, version: str) -> Obj:
    """The APIResourceList document of /api/v1 or /apis/G/V."""
    infos = [
        i for (g, v, _), i in sorted(resources.items()) if g == group and v == version
    ]
    if not infos:
        raise apierrors.generic(404)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": infos[0].api_version,
        "resources": [r for i in infos for r in i.discovery()],
    }


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", version)
    if not m:
        return (3, 0, 0)
    stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0))
