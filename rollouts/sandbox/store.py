"""The API emulator's store: objects by resource, one global resourceVersion, and the write
semantics a kube-apiserver applies (server-filled metadata, generation, resourceVersion
conflicts, the status and scale subresources, patches, admission of custom resources against
their CRD's schema, finalizers, deletion and garbage collection, managedFields and
server-side apply through ``managedfields``), with a watch event per write.

Storage, history and watchers are in ``rollouts.sandbox.storage``; deletion, finalizers,
garbage collection and namespace termination in ``rollouts.sandbox.deletion``.

No HTTP here: `rollouts.sandbox.apiserver.ApiEmulator` serves this store over HTTP and through
its in-process methods.
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import random
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from rollouts.sandbox import apierrors, managedfields, schema
from rollouts.sandbox.apierrors import ApiError, FieldError, GoLiteral
from rollouts.sandbox.deletion import Deletion
from rollouts.sandbox.managedfields import Writer
from rollouts.sandbox.patches import PatchFailed, json_patch, merge_patch, strategic_merge_patch
from rollouts.sandbox.resources import ResourceInfo
from rollouts.sandbox.selectors import (
    dotted,
    get_path,
    selector_to_string,
    set_path,
)

Obj = dict[str, Any]

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# The field manager of in-process writes (the sandbox's kubelet, tests, the demo).
IN_PROCESS_WRITER = Writer("rollouts-sandbox")


class ObjectStore(Deletion):
    """Objects and their write semantics; every write is one watch event (see module doc)."""

    def __init__(
        self,
        *,
        history_size: int = 10_000,
        clock: Callable[[], dt.datetime] | None = None,
        namespaces: Iterable[str] = ("default", "kube-system", "kube-public"),
    ) -> None:
        super().__init__(history_size=history_size, clock=clock)
        self._next_ip = int(ipaddress.IPv4Address("10.96.0.10"))
        self._random = random.Random()
        self._cel_programs: schema.Programs = {}
        for ns in namespaces:
            self._create(self._info("", "v1", "namespaces"), None, {"metadata": {"name": ns}})

    # ----------------------------------------------------------------- create

    def _create(self, info: ResourceInfo, namespace: str | None, body: Any, *,
                strict: bool = False, writer: Writer = IN_PROCESS_WRITER,
                applied: bool = False) -> Obj:
        if not isinstance(body, dict):
            raise apierrors.bad_request("the request body must be a JSON object")
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            meta = body["metadata"] = {}
        if info.namespaced:
            body_ns = meta.get("namespace")
            if namespace is None:
                namespace = body_ns or None
            if namespace is None:
                raise apierrors.bad_request("a namespace is required for a namespaced kind")
            if body_ns and body_ns != namespace:
                raise apierrors.bad_request(
                "the namespace of the provided object does not match the namespace sent "
                    "on the request",
                )
            meta["namespace"] = namespace
            ns_obj = self._objects.get(("", "namespaces"), {}).get(("", namespace))
            if ns_obj is None:
                raise ApiError(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    details={"name": namespace, "kind": "namespaces"},
                )
            if ns_obj["metadata"].get("deletionTimestamp"):
                name = meta.get("name") or meta.get("generateName")
                raise apierrors.forbidden(
                    f'{info.qualified} "{name}" is forbidden: unable to create new content in '
                    f"namespace {namespace} because it is being terminated",
                    {"name": name, "group": info.group, "kind": info.plural})
        else:
            meta.pop("namespace", None)
        store = self._store(info)
        name = meta.get("name")
        if not name:
            prefix = meta.get("generateName")
            if not prefix:
                raise apierrors.invalid(info.group, info.kind, "", [FieldError(
                    "Required", "metadata.name", "name or generateName is required")])
            for _ in range(100):
                name = prefix + "".join(self._random.choices(_GENERATE_ALPHABET, k=5))
                if (namespace or "", name) not in store:
                    break
            meta["name"] = name
        if not isinstance(name, str) or len(name) > 253 or not _NAME_RE.match(name):
            raise apierrors.invalid(info.group, info.kind, str(name), [FieldError(
                "Invalid", "metadata.name",
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character",
                name)])
        if (namespace or "", name) in store:
            raise apierrors.already_exists(info.group, info.plural, name)
        body["apiVersion"] = info.api_version
        body["kind"] = info.kind
        for field in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self._now()
        if info.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        meta.pop("managedFields", None)  # the server keeps its own record
        config = copy.deepcopy(body) if applied else None
        self._defaults_on_create(info, body)
        obj = self._admit(info, body, strict=strict)
        managedfields.record_create(
            obj, config, writer, managedfields.Shape(info.kind, info.custom),
            api_version=info.api_version, now=self._clock(), status_split=info.status)
        return self._commit(info, "ADDED", obj, None)

    def _defaults_on_create(self, info: ResourceInfo, body: Obj) -> None:
        meta = body["metadata"]
        if info.status and info.key != ("", "namespaces"):
            body.pop("status", None)
        key = info.key
        if key == ("", "namespaces"):
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            body.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            body["status"] = {"phase": "Active"}
        elif key == ("", "pods"):
            body.setdefault("spec", {})
            body["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif key == ("", "services"):
            spec = body.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            if spec.get("clusterIP") in (None, ""):
                spec["clusterIP"] = str(ipaddress.IPv4Address(self._next_ip))
                self._next_ip += 1
            if spec.get("clusterIP") != "None":
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
            body["status"] = {"loadBalancer": {}}
        elif key in (("apps", "replicasets"), ("apps", "deployments")):
            body.setdefault("spec", {}).setdefault("replicas", 1)
            body["status"] = {}
        elif key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            spec = body.setdefault("spec", {})
            body["status"] = self._crd_status(body, _accepted_names(spec))

    def _crd_status(self, crd: Obj, names: Obj) -> Obj:
        now = self._now()
        spec = crd.get("spec", {})
        stored = [v.get("name") for v in spec.get("versions", []) if v.get("storage")]
        conditions = [
            {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now}
            for t, r, m in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            )
        ]
        return {"acceptedNames": names, "conditions": conditions, "storedVersions": stored}

    # ----------------------------------------------------------------- update / patch

    def _admit(self, info: ResourceInfo, obj: Obj, *, strict: bool, name: str = "") -> Obj:
        """A custom resource pruned to its CRD's schema; 400 for unknown fields when strict,
        422 Invalid when the schema or a CEL rule refuses it (see rollouts.sandbox.schema)."""
        if not info.custom:
            return obj
        crds = self._objects.get(("apiextensions.k8s.io", "customresourcedefinitions"), {})
        crd = crds.get(("", f"{info.plural}.{info.group}"))
        versions = (crd or {}).get("spec", {}).get("versions") or []
        found = next((v.get("schema", {}).get("openAPIV3Schema") for v in versions
                      if v.get("name") == info.version), None)
        if not isinstance(found, dict):
            return obj
        pruned, checked = schema.check(obj, found, self._cel_programs)
        if strict and checked.unknown:
            unknown = ", ".join(f'unknown field "{path}"' for path in checked.unknown)
            raise apierrors.bad_request(
                f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: '
                f"strict decoding error: {unknown}")
        if checked.errors:
            raise apierrors.invalid(info.group, info.kind,
                                    name or str(obj["metadata"].get("name", "")), checked.errors)
        return pruned

    def _replace(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Any,
        subresource: str | None,
        *,
        strict: bool = False,
        writer: Writer = IN_PROCESS_WRITER,
    ) -> Obj:
        if not isinstance(body, dict):
            raise apierrors.bad_request("the request body must be a JSON object")
        old = self._current(info, namespace, name)
        if subresource == "scale":
            return self._write_scale(info, old, body)
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            meta = body["metadata"] = {}
        if meta.get("name") not in (None, name):
            raise apierrors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})",
            )
        if info.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise apierrors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        rv = meta.get("resourceVersion")
        if rv in (None, "") and info.custom:
            raise apierrors.invalid(info.group, info.kind, name, [FieldError(
                "Invalid", "metadata.resourceVersion", "must be specified for an update",
                GoLiteral("0x0"))])
        return self._update(info, old, body, subresource, strict=strict, writer=writer)

    def _patch(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        content_type: str,
        patch: Any,
        subresource: str | None,
        *,
        strict: bool = False,
        writer: Writer = IN_PROCESS_WRITER,
    ) -> Obj:
        ctype = content_type.split(";")[0].strip().lower()
        applying = ctype == "application/apply-patch+yaml"
        store = self._store(info)
        old = store.get((namespace or "", name))
        if old is None:
            if ctype == "application/apply-patch+yaml" and subresource is None:
                body = copy.deepcopy(patch) if isinstance(patch, dict) else {}
                body.setdefault("metadata", {})["name"] = name
                return self._create(info, namespace, body, strict=strict, writer=writer,
                                    applied=True)
            raise apierrors.not_found(info.group, info.plural, name)
        base = self._scale_object(info, old) if subresource == "scale" else old
        try:
            if ctype == "application/json-patch+json":
                if not isinstance(patch, list):
                    raise apierrors.bad_request(
                        "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
                candidate = json_patch(base, patch)
            elif ctype == "application/strategic-merge-patch+json" and not info.custom:
                if not isinstance(patch, dict):
                    raise apierrors.bad_request("Invalid JSON Patch")
                candidate = strategic_merge_patch(base, patch)
            elif applying and subresource is None:
                if not isinstance(patch, dict):
                    raise apierrors.bad_request("Invalid JSON Patch")
                candidate = managedfields.apply(
                    base, patch, writer, managedfields.Shape(info.kind, info.custom),
                    api_version=info.api_version, now=self._clock(), status_split=info.status)
            elif ctype in ("application/merge-patch+json", "application/apply-patch+yaml"):
                if not isinstance(patch, dict):
                    raise apierrors.bad_request("Invalid JSON Patch")
                candidate = merge_patch(base, patch)
            else:
                raise apierrors.unsupported_media_type(
                    ["application/json-patch+json", "application/merge-patch+json",
                     "application/apply-patch+yaml"]
                    + ([] if info.custom else ["application/strategic-merge-patch+json"]))
        except PatchFailed as e:
            # kube-apiserver (patch.go applyJSPatch) answers every JSON patch that does not
            # apply -- a failed `test`, a missing path -- with the generic 422, no causes.
            raise apierrors.generic(422) from e
        if not isinstance(candidate, dict):
            raise apierrors.generic(422)
        if subresource == "scale":
            return self._write_scale(info, old, candidate)
        return self._update(info, old, candidate, subresource, strict=strict, writer=writer,
                            applied=applying and subresource is None)

    def _update(self, info: ResourceInfo, old: Obj, candidate: Obj, sub: str | None, *,
                strict: bool = False, writer: Writer = IN_PROCESS_WRITER,
                applied: bool = False) -> Obj:
        """The common tail of PUT and PATCH on the main resource or on ``/status``."""
        name = old["metadata"]["name"]
        cmeta = candidate.get("metadata")
        if not isinstance(cmeta, dict):
            cmeta = {}
        rv = cmeta.get("resourceVersion")
        if rv not in (None, "") and str(rv) != old["metadata"]["resourceVersion"]:
            raise apierrors.conflict(info.group, info.plural, name)
        if sub is not None and sub != "status":
            raise apierrors.generic(404)
        if sub == "status":
            if not info.status:
                raise apierrors.generic(404)
            new = copy.deepcopy(old)
            if "status" in candidate:
                new["status"] = copy.deepcopy(candidate["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(candidate)
            new["apiVersion"] = old["apiVersion"]
            new["kind"] = old["kind"]
            new["metadata"] = copy.deepcopy(cmeta)
            new = self._admit(info, new, strict=strict, name=name)
            meta = new["metadata"]
            for field in (
                "uid",
                "creationTimestamp",
                "name",
                "namespace",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
            ):
                if field in old["metadata"]:
                    meta[field] = old["metadata"][field]
                else:
                    meta.pop(field, None)
            if info.status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            if old["metadata"].get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(
                    old["metadata"].get("finalizers") or []
                )
                if added:
                    raise apierrors.invalid(info.group, info.kind, name, [FieldError(
                        "Forbidden", "metadata.finalizers",
                        "no new finalizers can be added if the object is being deleted")])
            if info.has_generation and self._content(info, new) != self._content(info, old):
                meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
            if not meta.get("finalizers"):
                meta.pop("finalizers", None)
        if sub == "status":
            new = self._admit(info, new, strict=strict, name=name)
        if applied:  # the apply recorded its own managedFields; keep no client copy
            new["metadata"]["managedFields"] = candidate["metadata"].get("managedFields", [])
            if not new["metadata"]["managedFields"]:
                new["metadata"].pop("managedFields")
        else:
            managedfields.record_update(
                old, new, writer, managedfields.Shape(info.kind, info.custom),
                api_version=info.api_version, now=self._clock(), subresource=sub or "",
                status_split=info.status)
        if new == old:
            return old  # a no-op write changes nothing, not even the resourceVersion
        if info.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            new.setdefault("status", {})["acceptedNames"] = _accepted_names(
                new.get("spec", {}))
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            return self._remove(info, new, old)
        return self._commit(info, "MODIFIED", new, old)

    @staticmethod
    def _content(info: ResourceInfo, obj: Obj) -> Obj:
        return {
            k: v
            for k, v in obj.items()
            if k not in ("metadata", "apiVersion", "kind") and not (k == "status" and info.status)
        }

    # ----------------------------------------------------------------- scale

    def _scale_object(self, info: ResourceInfo, obj: Obj) -> Obj:
        if info.scale is None:
            raise apierrors.generic(404)
        meta = obj["metadata"]
        spec_replicas = get_path(obj, dotted(info.scale.spec_replicas_path))
        status_replicas = get_path(obj, dotted(info.scale.status_replicas_path))
        if info.scale.label_selector_path:
            selector = get_path(obj, dotted(info.scale.label_selector_path))
        else:
            selector = selector_to_string(get_path(obj, ["spec", "selector"]))
        status: Obj = {"replicas": int(status_replicas or 0)}
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": int(spec_replicas or 0)},
            "status": status,
        }

    def _write_scale(self, info: ResourceInfo, old: Obj, scale: Obj) -> Obj:
        if info.scale is None:
            raise apierrors.generic(404)
        rv = get_path(scale, ["metadata", "resourceVersion"])
        if rv not in (None, "") and str(rv) != old["metadata"]["resourceVersion"]:
            raise apierrors.conflict(info.group, info.plural, old["metadata"]["name"])
        replicas = get_path(scale, ["spec", "replicas"])
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise apierrors.invalid("autoscaling", "Scale", old["metadata"]["name"], [FieldError(
                "Invalid", "spec.replicas", "must be greater than or equal to 0", replicas)])
        candidate = copy.deepcopy(old)
        set_path(candidate, dotted(info.scale.spec_replicas_path), replicas)
        self._update(info, old, candidate, None)
        return self._scale_object(
            info, self._current(info, old["metadata"].get("namespace"), old["metadata"]["name"])
        )


def _accepted_names(crd_spec: Obj) -> Obj:
    """A CRD's `status.acceptedNames`: its names, with the singular and listKind filled in."""
    names = dict(crd_spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    return names
