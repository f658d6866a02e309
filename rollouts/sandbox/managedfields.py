"""Field management as kube-apiserver does it: `metadata.managedFields` and server-side apply.

Every write is recorded against a field manager (the `fieldManager` parameter, or the first
part of the client's User-Agent) as the real server's structured-merge-diff does:

* an update (create, PUT, merge / JSON / strategic patch) gives its manager the fields it
  added or changed, taking them from whoever had them (``operation: Update``);
* a server-side apply (``application/apply-patch+yaml``) owns exactly the fields of the
  applied configuration (``operation: Apply``); a field another manager owns and the apply
  would change is a conflict (409, one cause per field, the real message), unless
  ``force=true``, which takes the field; a field the manager applied before and no longer
  applies is removed when nobody else owns it.

Fields are paths in FieldsV1 notation (``f:name``, ``k:{"port":80,"protocol":"TCP"}`` for an
item of a keyed list, ``v:"x"`` for a set item). An atomic field (a `x-kubernetes-map-type:
atomic` map such as ``Service.spec.selector``, an atomic struct such as a LabelSelector,
and any list without merge keys) is one leaf: whoever applies it owns all of it.

What is not done: the OpenAPI of every built-in kind (a table below names the merge keys and
atomic maps of the fields the sandbox's objects use; custom resources get keyed
`metadata` lists, atomic lists and granular maps), apply on a subresource, managedFields
sent by a client (the server's record is kept), and the `before-first-apply` migration of
client-side-apply managers.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from rollouts.sandbox import apierrors
from rollouts.sandbox.apierrors import ApiError, FieldError

Obj = dict[str, Any]
Path = tuple[str, ...]
FieldSet = frozenset[Path]

# Metadata the server owns: never part of a field set (the real server strips the same).
_STRIPPED_META: Final = frozenset({
    "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
    "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
})

# Merge keys of keyed lists, by the list's field name (and, where one name has two schemas,
# by the kind): the lists of the sandbox's built-in kinds with x-kubernetes-list-type map.
_LIST_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "ownerReferences": ("uid",),
    "conditions": ("type",),
    "imagePullSecrets": ("name",),
}
_SET_LISTS: Final = frozenset({"finalizers"})
# Atomic maps and structs of the built-in kinds (x-kubernetes-map-type / structType atomic):
# (kind, path of field names). Service.spec.selector is the one that matters here.
_ATOMIC: Final = frozenset({
    ("Service", ("spec", "selector")),
    ("ReplicaSet", ("spec", "selector")),
    ("Deployment", ("spec", "selector")),
    ("Job", ("spec", "selector")),
    ("PodDisruptionBudget", ("spec", "selector")),
})

_MISSING: Final = object()


@dataclasses.dataclass(frozen=True)
class Writer:
    """Who writes: the field manager, and for an apply whether it forces conflicts."""

    manager: str
    force: bool = False


def manager_from_user_agent(user_agent: str) -> str:
    """The default field manager of a request without `fieldManager`: the User-Agent up to
    its first "/", at most 128 characters (as the real server derives it)."""
    return user_agent.split("/", 1)[0][:128]


def request_writer(field_manager: str | None, force: str | None, user_agent: str, *,
                   applying: bool, options_kind: str = "PatchOptions") -> Writer:
    """The writer of an HTTP write from its `fieldManager` and `force` parameters (422 with
    the real server's PatchOptions / UpdateOptions errors when they do not fit)."""
    errors: list[FieldError] = []
    if applying and not field_manager:
        errors.append(FieldError("Required", "fieldManager", "is required for apply patch"))
    if force is not None and not applying:
        errors.append(FieldError("Forbidden", "force",
                                 "may not be specified for non-apply patch"))
    if field_manager and len(field_manager) > 128:
        errors.append(FieldError("TooLong", "fieldManager", "must have at most 128 characters",
                                 field_manager))
    if errors:
        raise apierrors.invalid("meta.k8s.io", options_kind, "", errors)
    manager = field_manager or manager_from_user_agent(user_agent)
    return Writer(manager, force=(force or "").lower() in ("true", "1"))


# --------------------------------------------------------------------------- paths


@dataclasses.dataclass(frozen=True)
class Shape:
    """How one kind's fields merge: what is keyed, a set, or atomic."""

    kind: str
    custom: bool

    def list_keys(self, names: tuple[str, ...]) -> tuple[str, ...] | None:
        if not names:
            return None
        last = names[-1]
        if last == "ports" and not self.custom:
            return ("port", "protocol") if self.kind == "Service" and names == (
                "spec", "ports") else ("containerPort", "protocol")
        if self.custom and names[0] != "metadata":
            return None
        return _LIST_KEYS.get(last)

    def is_set(self, names: tuple[str, ...]) -> bool:
        return bool(names) and names[-1] in _SET_LISTS and names[0] == "metadata"

    def atomic(self, names: tuple[str, ...]) -> bool:
        return (self.kind, names) in _ATOMIC


# Defaults of merge keys (a port's protocol): an item that leaves one out is the same item
# as one that spells it out, as the real server defaults list-map keys.
_KEY_DEFAULTS: Final[Mapping[str, Any]] = {"protocol": "TCP"}


def _key_element(item: Obj, keys: tuple[str, ...]) -> str:
    present = {k: item.get(k, _KEY_DEFAULTS.get(k)) for k in keys
               if k in item or k in _KEY_DEFAULTS}
    return "k:" + json.dumps(present, separators=(",", ":"))


def _value_element(item: Any) -> str:
    return "v:" + json.dumps(item, separators=(",", ":"), sort_keys=True)


def _keyed(value: Any, keys: tuple[str, ...] | None) -> bool:
    return keys is not None and isinstance(value, list) and all(
        isinstance(i, dict) and any(k in i for k in keys) for i in value)


def _walk(value: Any, path: Path, names: tuple[str, ...], shape: Shape, out: set[Path]) -> None:
    keys = shape.list_keys(names)
    if isinstance(value, dict) and value and not shape.atomic(names):
        for name, child in value.items():
            if child is not None:
                _walk(child, (*path, f"f:{name}"), (*names, name), shape, out)
    elif isinstance(value, list) and value and _keyed(value, keys):
        assert keys is not None
        for item in value:
            item_path = (*path, _key_element(item, keys))
            out.add(item_path)
            for name, child in item.items():
                if child is not None:
                    _walk(child, (*item_path, f"f:{name}"), (*names, "[]", name), shape, out)
    elif isinstance(value, list) and value and shape.is_set(names):
        out.update((*path, _value_element(item)) for item in value)
    else:
        out.add(path)


def _scoped(obj: Obj, status: bool | None) -> Obj:
    """The part of `obj` field sets speak of: no apiVersion/kind, no server-owned metadata;
    `status`: None keeps every top-level field, True only `status` (a status write), False
    all but `status` (a main-resource write of a kind with a status subresource)."""
    out = {name: value for name, value in obj.items()
           if name not in ("apiVersion", "kind") and value is not None
           and (status is None or (name == "status") == status)}
    meta = out.get("metadata")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if k not in _STRIPPED_META and v is not None}
        if kept:
            out["metadata"] = kept
        else:
            del out["metadata"]
    return out


def members(obj: Obj, shape: Shape, *, status: bool | None) -> set[Path]:
    """Every field `obj` sets, as FieldsV1 paths (see `_scoped` for `status`)."""
    out: set[Path] = set()
    for name, value in _scoped(obj, status).items():
        _walk(value, (f"f:{name}",), (name,), shape, out)
    return out


def _diff(old: Any, new: Any, path: Path, names: tuple[str, ...], shape: Shape,
          changed: set[Path], removed: set[Path]) -> None:
    """Fields `new` adds or changes over `old` (into `changed`) and fields it drops (into
    `removed`), descending only where the two differ."""
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict) and (
            (old and new) or not path) and not shape.atomic(names):
        for name in {*old, *new}:
            before, after = old.get(name), new.get(name)
            child, child_names = (*path, f"f:{name}"), (*names, name)
            if before is None and after is not None:
                _walk(after, child, child_names, shape, changed)
            elif after is None and before is not None:
                _walk(before, child, child_names, shape, removed)
            else:
                _diff(before, after, child, child_names, shape, changed, removed)
        return
    keys = shape.list_keys(names)
    if _keyed(old, keys) and _keyed(new, keys) and old and new:
        assert keys is not None
        before_items = {_key_element(i, keys): i for i in old}
        after_items = {_key_element(i, keys): i for i in new}
        for element in {*before_items, *after_items}:
            item_path, item_names = (*path, element), (*names, "[]")
            if element not in before_items:
                changed.add(item_path)
                _walk_fields(after_items[element], item_path, item_names, shape, changed)
            elif element not in after_items:
                removed.add(item_path)
                _walk_fields(before_items[element], item_path, item_names, shape, removed)
            else:
                _diff(before_items[element], after_items[element], item_path, item_names,
                      shape, changed, removed)
        return
    before_set: set[Path] = set()
    after_set: set[Path] = set()
    _walk(old, path, names, shape, before_set)
    _walk(new, path, names, shape, after_set)
    # A leaf whose value changed stays a member: changed, not removed.
    changed.update(p for p in after_set if p not in before_set or value_at(
        {"_": old}, ("f:_", *p[len(path):])) != value_at({"_": new}, ("f:_", *p[len(path):])))
    removed.update(before_set - after_set)


def _walk_fields(item: Any, path: Path, names: tuple[str, ...], shape: Shape,
                 out: set[Path]) -> None:
    if isinstance(item, dict):
        for name, child in item.items():
            if child is not None:
                _walk(child, (*path, f"f:{name}"), (*names, name), shape, out)


def value_at(obj: Any, path: Path) -> Any:
    """The value at a FieldsV1 path, or `_MISSING`."""
    current = obj
    for element in path:
        kind, _, text = element.partition(":")
        if kind == "f" and isinstance(current, dict) and text in current:
            current = current[text]
        elif kind == "k" and isinstance(current, list):
            key = json.loads(text)
            current = next((i for i in current if isinstance(i, dict)
                            and all(i.get(k, _KEY_DEFAULTS.get(k)) == v
                                    for k, v in key.items())), _MISSING)
        elif kind == "v" and isinstance(current, list):
            wanted = json.loads(text)
            current = wanted if wanted in current else _MISSING
        else:
            return _MISSING
        if current is _MISSING:
            return _MISSING
    return current


def remove_path(obj: Any, path: Path) -> None:
    """Remove the field, item or set value at `path` (nothing if it is not there)."""
    if not path:
        return
    parent = value_at(obj, path[:-1])
    kind, _, text = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(text, None)
    elif kind in ("k", "v") and isinstance(parent, list):
        found = value_at(parent, (path[-1],))
        if found is not _MISSING:
            parent.remove(found)


def path_string(path: Path) -> str:
    """fieldpath.Path.String(): `.spec.selector`, `.spec.ports[port=80,protocol="TCP"]`."""
    out = []
    for element in path:
        kind, _, text = element.partition(":")
        if kind == "f":
            out.append(f".{text}")
        elif kind == "k":
            key = json.loads(text)
            out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]")
        else:
            out.append(f"[={text}]")
    return "".join(out)


def to_fields_v1(paths: Iterable[Path]) -> Obj:
    """A set of paths as the FieldsV1 trie ("." marks a member that also has children)."""
    root: Obj = {}
    listed = set(paths)
    for path in sorted(listed):
        node = root
        for element in path:
            node = node.setdefault(element, {})
    for path in listed:
        node = root
        for element in path:
            node = node[element]
        if any(k != "." for k in node):
            node["."] = {}
    return _sorted_trie(root)


def _sorted_trie(node: Obj) -> Obj:
    """Keys in the order the real server serializes them ("." first, then by name)."""
    return {key: _sorted_trie(node[key]) for key in sorted(node)}


def from_fields_v1(trie: Any, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(trie, dict):
        return out
    for element, child in trie.items():
        if element == ".":
            out.add(prefix)
            continue
        path = (*prefix, element)
        if not child:
            out.add(path)
        else:
            out.update(from_fields_v1(child, path))
    return out


# --------------------------------------------------------------------------- entries


class FieldsV1(dict[str, Any]):
    """A FieldsV1 trie as stored: never changed in place (a new one is built for every
    change), so copies of the object share it instead of deep-copying it on every write."""

    def __deepcopy__(self, memo: dict[int, Any]) -> FieldsV1:
        return self


@dataclasses.dataclass
class Entry:
    manager: str
    operation: str  # "Apply" | "Update"
    api_version: str
    time: str
    fields: set[Path]
    subresource: str = ""

    @property
    def identity(self) -> tuple[str, str, str, str]:
        # An Apply entry is one per manager whatever the version (as the real server keys it).
        version = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def wire(self) -> Obj:
        out: Obj = {"manager": self.manager, "operation": self.operation,
                    "apiVersion": self.api_version, "time": self.time,
                    "fieldsType": "FieldsV1", "fieldsV1": FieldsV1(to_fields_v1(self.fields))}
        if self.subresource:
            out["subresource"] = self.subresource
        return out

    def printed(self) -> str:
        """The manager as a conflict message names it (printManager)."""
        if self.operation == "Update":
            return f'"{self.manager}" using {self.api_version}'
        return f'"{self.manager}"'


def read_entries(obj: Obj) -> list[Entry]:
    out = []
    for raw in obj.get("metadata", {}).get("managedFields") or []:
        if isinstance(raw, dict):
            out.append(Entry(str(raw.get("manager", "")), str(raw.get("operation", "Update")),
                             str(raw.get("apiVersion", "")), str(raw.get("time", "")),
                             from_fields_v1(raw.get("fieldsV1")),
                             str(raw.get("subresource", ""))))
    return out


def write_entries(obj: Obj, entries: list[Entry]) -> None:
    kept = [e.wire() for e in entries if e.fields]
    if kept:
        obj["metadata"]["managedFields"] = kept
    else:
        obj["metadata"].pop("managedFields", None)


def _own(entries: list[Entry], mine: Entry, fields: set[Path], now: str) -> list[Entry]:
    """`entries` with `mine` holding `fields` (its time renewed only when they changed)."""
    out = []
    placed = False
    for entry in entries:
        if entry.identity == mine.identity:
            placed = True
            if entry.fields != fields:
                entry = dataclasses.replace(entry, fields=set(fields), time=now,
                                            api_version=mine.api_version)
        out.append(entry)
    if not placed:
        out.append(dataclasses.replace(mine, fields=set(fields), time=now))
    return [e for e in out if e.fields]


# --------------------------------------------------------------------------- update


def record_update(old: Obj | None, new: Obj, writer: Writer, shape: Shape, *,
                  api_version: str, now: dt.datetime, subresource: str = "",
                  status_split: bool = False) -> None:
    """Record a non-apply write of `new` (over `old`; None for a create) in new's
    managedFields: the writer takes every field it added or changed; removed fields leave
    every manager."""
    scope = (subresource == "status") if status_split else None
    changed: set[Path] = set()
    removed: set[Path] = set()
    if old is None:
        changed = members(new, shape, status=scope)
    else:
        _diff(_scoped(old, scope), _scoped(new, scope), (), (), shape, changed, removed)
        if not changed and not removed:  # nothing moved: the record stays as it was
            kept = old["metadata"].get("managedFields")
            if kept:
                new["metadata"]["managedFields"] = copy.deepcopy(kept)
            else:
                new["metadata"].pop("managedFields", None)
            return
    entries = read_entries(old) if old is not None else []
    before = [(e.identity, set(e.fields)) for e in entries]
    for entry in entries:
        entry.fields -= changed | removed
    mine = Entry(writer.manager, "Update", api_version, "", set(), subresource)
    current = next((e.fields for e in entries if e.identity == mine.identity), set())
    stamp = _stamp(now)
    if changed or old is None:
        entries = _own(entries, mine, current | changed, stamp)
    if old is not None and [(e.identity, e.fields) for e in entries] == before:
        # The same owners of the same fields (a manager writing its own fields again): the
        # record is kept as it was, time included, as the real server does.
        kept = [dict(e) for e in old["metadata"].get("managedFields") or ()]
        if kept:
            new["metadata"]["managedFields"] = kept
        else:
            new["metadata"].pop("managedFields", None)
        return
    write_entries(new, [e for e in entries if e.fields])


def record_create(obj: Obj, applied_config: Obj | None, writer: Writer, shape: Shape, *,
                  api_version: str, now: dt.datetime, status_split: bool) -> None:
    """managedFields of a new object: an Apply entry owning the applied configuration, or
    an Update entry owning everything the create set."""
    if applied_config is None:
        record_update(None, obj, writer, shape, api_version=api_version, now=now,
                      status_split=status_split)
        return
    fields = members(applied_config, shape, status=False if status_split else None)
    write_entries(obj, [Entry(writer.manager, "Apply", api_version, _stamp(now), fields)])


# --------------------------------------------------------------------------- apply


def merge_applied(live: Any, applied: Any, names: tuple[str, ...], shape: Shape) -> Any:
    """The applied configuration merged into the live object: maps and keyed lists by
    field and key, set lists as a union, atomic fields and other lists replaced."""
    if isinstance(applied, dict) and isinstance(live, dict) and not shape.atomic(names):
        out = dict(live)
        for name, value in applied.items():
            if value is None:
                continue
            out[name] = merge_applied(live.get(name), value, (*names, name), shape)
        return out
    keys = shape.list_keys(names)
    if isinstance(applied, list) and isinstance(live, list) and _keyed(applied, keys):
        assert keys is not None
        merged = [copy.deepcopy(i) for i in live]
        for item in applied:
            element = _key_element(item, keys)
            index = next((n for n, i in enumerate(merged) if isinstance(i, dict)
                          and _key_element(i, keys) == element), None)
            if index is None:
                merged.append(merge_applied(None, item, (*names, "[]"), shape))
            else:
                merged[index] = merge_applied(merged[index], item, (*names, "[]"), shape)
        return merged
    if isinstance(applied, list) and isinstance(live, list) and shape.is_set(names):
        return list(live) + [i for i in applied if i not in live]
    if isinstance(applied, dict):
        return merge_applied({}, applied, names, shape) if not shape.atomic(names) else (
            copy.deepcopy(applied))
    return copy.deepcopy(applied)


def conflict_error(conflicts: list[tuple[Entry, Path]]) -> ApiError:
    """NewApplyConflict: 409 Conflict, one FieldManagerConflict cause per field, and the
    message of the real server (one line for one conflict, grouped by manager otherwise)."""
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {e.printed()}",
               "field": path_string(p)} for e, p in conflicts]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = (f"Apply failed with 1 conflict: conflict with {entry.printed()}: "
                   f"{path_string(path)}")
    else:
        by_manager: dict[str, list[str]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(entry.printed(), []).append(path_string(path))
        lines = []
        for printed in sorted(by_manager):
            lines.append(f"conflicts with {printed}:")
            lines.extend(f"- {p}" for p in by_manager[printed])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, details={"causes": causes})


def apply(live: Obj, applied: Obj, writer: Writer, shape: Shape, *, api_version: str,
          now: dt.datetime, status_split: bool) -> Obj:
    """Server-side apply of `applied` over `live`: the merged object with its managedFields.

    Raises the 409 apply conflict when a field another manager owns would change and the
    writer does not force.
    """
    scope = False if status_split else None
    applied_set = members(applied, shape, status=scope)
    merged: Obj = merge_applied(live, {k: v for k, v in applied.items()
                                       if not (status_split and k == "status")}, (), shape)
    merged.setdefault("metadata", {})
    entries = read_entries(live)
    mine = Entry(writer.manager, "Apply", api_version, "", set())
    changed = {p for p in applied_set if not p[-1].startswith("k:")
               and value_at(live, p) != value_at(merged, p)}
    conflicts = [(entry, path) for entry in entries if entry.identity != mine.identity
                 for path in sorted(entry.fields & changed)]
    if conflicts and not writer.force:
        raise conflict_error(conflicts)
    for entry in entries:
        if entry.identity != mine.identity:
            entry.fields -= changed
    before = next((e.fields for e in entries if e.identity == mine.identity), set())
    others: set[Path] = set()
    for entry in entries:
        if entry.identity != mine.identity:
            others |= entry.fields
    # Fields this manager applied before and applies no more go, unless someone else owns
    # them; deepest first, so an item goes after its own fields.
    for path in sorted(before - applied_set - others, key=len, reverse=True):
        remove_path(merged, path)
    write_entries(merged, _own(entries, mine, applied_set, _stamp(now)))
    return merged


def _stamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
