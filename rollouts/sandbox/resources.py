"""The resources the API emulator serves: what discovery lists for each, and the built-in kinds.

A custom resource gets its ResourceInfo when its CustomResourceDefinition is created.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rollouts.sandbox import rbac

Obj = dict[str, Any]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUB_VERBS = ("get", "patch", "update")


@dataclasses.dataclass(frozen=True)
class ScaleInfo:
    spec_replicas_path: str = ".spec.replicas"
    status_replicas_path: str = ".status.replicas"
    label_selector_path: str | None = None  # None: build it from .spec.selector


@dataclasses.dataclass(frozen=True)
class ResourceInfo:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status: bool = False
    scale: ScaleInfo | None = None
    has_generation: bool = True
    custom: bool = False
    printer_columns: tuple[tuple[str, str], ...] = ()  # (name, jsonPath)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def discovery(self) -> list[Obj]:
        main: Obj = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(ALL_VERBS),
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        out = [main]
        if self.status:
            out.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": list(SUB_VERBS),
                }
            )
        if self.key == ("", "pods"):
            out.append({"name": "pods/eviction", "singularName": "", "namespaced": True,
                        "group": "policy", "version": "v1", "kind": "Eviction",
                        "verbs": ["create"]})
        if self.scale is not None:
            out.append(
                {
                    "name": f"{self.plural}/scale",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": list(SUB_VERBS),
                }
            )
        return out


def builtin_resources() -> list[ResourceInfo]:
    rs_scale = ScaleInfo()
    return [
        ResourceInfo(
            "",
            "v1",
            "namespaces",
            "namespace",
            "Namespace",
            False,
            ("ns",),
            status=True,
            has_generation=False,
        ),
        ResourceInfo("", "v1", "pods", "pod", "Pod", True, ("po",), ("all",), status=True),
        ResourceInfo(
            "",
            "v1",
            "services",
            "service",
            "Service",
            True,
            ("svc",),
            ("all",),
            status=True,
            has_generation=False,
        ),
        ResourceInfo("", "v1", "events", "event", "Event", True, ("ev",), has_generation=False),
        ResourceInfo("", "v1", "secrets", "secret", "Secret", True, has_generation=False),
        ResourceInfo(
            "", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",), has_generation=False
        ),
        ResourceInfo(
            "",
            "v1",
            "serviceaccounts",
            "serviceaccount",
            "ServiceAccount",
            True,
            ("sa",),
            has_generation=False,
        ),
        ResourceInfo(
            "", "v1", "endpoints", "endpoints", "Endpoints", True, ("ep",), has_generation=False
        ),
        ResourceInfo(
            "apps",
            "v1",
            "replicasets",
            "replicaset",
            "ReplicaSet",
            True,
            ("rs",),
            ("all",),
            status=True,
            scale=rs_scale,
        ),
        ResourceInfo(
            "apps",
            "v1",
            "deployments",
            "deployment",
            "Deployment",
            True,
            ("deploy",),
            ("all",),
            status=True,
            scale=rs_scale,
        ),
        ResourceInfo("batch", "v1", "jobs", "job", "Job", True, (), ("all",), status=True),
        # No disruption controller: evictions compute a budget's allowance from the pods
        # (rollouts/sandbox/eviction.py).
        ResourceInfo("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget",
                     "PodDisruptionBudget", True, ("pdb",), status=True),
        # No ingress controller runs here: status stays as written (the NGINX router only
        # reads and writes spec and annotations).
        ResourceInfo("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", True,
                     ("ing",), status=True),
        ResourceInfo(
            "coordination.k8s.io", "v1", "leases", "lease", "Lease", True, has_generation=False
        ),
        *(
            ResourceInfo(rbac.GROUP, "v1", plural, plural[:-1], kind, namespaced,
                         has_generation=False)
            for plural, kind, namespaced in (
                ("roles", "Role", True), ("rolebindings", "RoleBinding", True),
                ("clusterroles", "ClusterRole", False),
                ("clusterrolebindings", "ClusterRoleBinding", False))
        ),
        ResourceInfo(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            False,
            ("crd", "crds"),
            status=True,
        ),
    ]
