"""Deletion as a kube-apiserver does it: preconditions, finalizers and
``deletionTimestamp``, background garbage collection by ``ownerReferences`` (``Orphan``
keeps the dependents), and namespaces that terminate once their contents are gone."""

from __future__ import annotations

import copy
from typing import Any

from rollouts.sandbox import apierrors
from rollouts.sandbox.resources import ResourceInfo
from rollouts.sandbox.storage import Storage

Obj = dict[str, Any]


class Deletion(Storage):
    """The delete verb and what follows from it: finalizers, dependents, namespaces."""

    def _delete(
        self, info: ResourceInfo, namespace: str | None, name: str, options: Obj | None
    ) -> Obj:
        options = options or {}
        old = self._current(info, namespace, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise apierrors.conflict(
                info.group, info.plural, name,
                f"Precondition failed: UID in precondition: {pre['uid']}, "
                f"UID in object meta: {old['metadata']['uid']}")
        if (
            pre.get("resourceVersion")
            and pre["resourceVersion"] != old["metadata"]["resourceVersion"]
        ):
            raise apierrors.conflict(info.group, info.plural, name)
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is True:
            policy = "Orphan"
        if info.key == ("", "namespaces"):
            return self._delete_namespace(info, old)
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return old
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = self._now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if info.has_generation:
                new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
            return self._commit(info, "MODIFIED", new, old)
        return self._remove(info, copy.deepcopy(old), old, policy=policy or "Background")

    def _remove(self, info: ResourceInfo, obj: Obj, old: Obj, *, policy: str = "Background") -> Obj:
        result = self._commit(info, "DELETED", obj, old)
        self._collect_dependents(obj["metadata"]["uid"], orphan=policy == "Orphan")
        ns = obj["metadata"].get("namespace")
        if ns:
            self._maybe_finish_namespace(ns)
        return result

    def _collect_dependents(self, owner_uid: str, *, orphan: bool) -> None:
        """Background garbage collection: dependents whose last owner is gone go too."""
        for resource, key in sorted(self._indexes.dependents.get(owner_uid, ())):
            info = self._any_info(resource)
            current = self._objects.get(resource, {}).get(key)
            if info is None or current is None:
                continue
            refs = current["metadata"].get("ownerReferences") or []
            remaining = [r for r in refs if r.get("uid") != owner_uid]
            if not orphan and not any(r.get("uid") in self._indexes.uids for r in remaining):
                self._delete(info, current["metadata"].get("namespace"),
                             current["metadata"]["name"], None)
            else:
                new = copy.deepcopy(current)
                if remaining:
                    new["metadata"]["ownerReferences"] = remaining
                else:
                    new["metadata"].pop("ownerReferences", None)
                self._commit(info, "MODIFIED", new, current)

    def _delete_namespace(self, info: ResourceInfo, old: Obj) -> Obj:
        name = old["metadata"]["name"]
        if not old["metadata"].get("deletionTimestamp"):
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = self._now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            old = self._commit(info, "MODIFIED", new, old)
        for key, store in list(self._objects.items()):
            kinfo = self._any_info(key)
            if kinfo is None or not kinfo.namespaced:
                continue
            for ns, oname in list(store):
                fresh = store.get((ns, oname))
                if (
                    ns == name
                    and fresh is not None
                    and not fresh["metadata"].get("deletionTimestamp")
                ):
                    self._delete(kinfo, ns, oname, None)
        return self._maybe_finish_namespace(name) or old

    def _maybe_finish_namespace(self, name: str) -> Obj | None:
        info = self._info("", "v1", "namespaces")
        ns_obj = self._store(info).get(("", name))
        if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
            return None
        for key, store in self._objects.items():
            if key == info.key:
                continue
            if any(ns == name for ns, _ in store):
                return None
        if ns_obj["metadata"].get("finalizers"):
            return None
        return self._commit(info, "DELETED", copy.deepcopy(ns_obj), ns_obj)
