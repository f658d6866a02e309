"""The API emulator's indexes over its store, kept by every commit: objects by label (for
list/watch label selectors), by uid, and by owner uid (for garbage collection). Without them
each selector list and each delete scanned every object: quadratic at a thousand Rollouts."""

from __future__ import annotations

import dataclasses
from typing import Any

from rollouts.sandbox.selectors import LabelIndex

Obj = dict[str, Any]
ResourceKey = tuple[str, str]  # (group, plural)
Key = tuple[str, str]  # (namespace or "", name)
Entry = tuple[ResourceKey, Key]


@dataclasses.dataclass
class StoreIndexes:
    labels: dict[ResourceKey, LabelIndex] = dataclasses.field(default_factory=dict)
    # uid -> where the object is stored.
    uids: dict[str, Entry] = dataclasses.field(default_factory=dict)
    # owner uid -> the objects whose ownerReferences name it.
    dependents: dict[str, set[Entry]] = dataclasses.field(default_factory=dict)

    def label_index(self, resource: ResourceKey) -> LabelIndex:
        return self.labels.setdefault(resource, LabelIndex())

    def record(self, resource: ResourceKey, key: Key, old: Obj | None, new: Obj | None) -> None:
        """The object at `key` went from `old` to `new` (None: absent)."""
        old_meta = old["metadata"] if old is not None else {}
        new_meta = new["metadata"] if new is not None else {}
        self.label_index(resource).replace(key, old_meta.get("labels"), new_meta.get("labels"))
        entry = (resource, key)
        if old_meta.get("uid"):
            self.uids.pop(old_meta["uid"], None)
        for owner in _owner_uids(old_meta):
            entries = self.dependents.get(owner)
            if entries is not None:
                entries.discard(entry)
                if not entries:
                    del self.dependents[owner]
        if new_meta.get("uid"):
            self.uids[new_meta["uid"]] = entry
        for owner in _owner_uids(new_meta):
            self.dependents.setdefault(owner, set()).add(entry)


def _owner_uids(meta: Obj) -> list[str]:
    return [str(ref["uid"]) for ref in meta.get("ownerReferences") or () if ref.get("uid")]
