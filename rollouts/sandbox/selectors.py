"""Label and field selectors, and the dotted-path helpers the emulator reads objects with."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from rollouts.sandbox.apierrors import bad_request

Obj = dict[str, Any]


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


_SET_RE = re.compile(r"^([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)$")
_EQ_RE = re.compile(r"^([^\s!=()]+)\s*(==|=|!=)\s*([^\s,()]*)$")
_KEY_RE = re.compile(r"^(!?)\s*([^\s!=()]+)$")


@dataclasses.dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector (string form), as in ``kubectl -l``."""

    requirements: tuple[tuple[str, str, frozenset[str]], ...]

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        reqs: list[tuple[str, str, frozenset[str]]] = []
        for term in _split_top_level(text or ""):
            if m := _SET_RE.match(term):
                values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
                reqs.append((m.group(1), m.group(2), values))
            elif m := _EQ_RE.match(term):
                op = "!=" if m.group(2) == "!=" else "="
                reqs.append((m.group(1), op, frozenset([m.group(3)])))
            elif m := _KEY_RE.match(term):
                reqs.append((m.group(2), "!" if m.group(1) else "exists", frozenset()))
            else:
                raise bad_request(f"unable to parse requirement: {term!r}")
        return cls(tuple(reqs))

    @classmethod
    def from_dict(cls, selector: Obj | None) -> LabelSelector:
        """A ``LabelSelector`` object (matchLabels / matchExpressions) as a string selector."""
        return cls.parse(selector_to_string(selector))

    def matches(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        for key, op, values in self.requirements:
            present = key in labels
            value = labels.get(key)
            if op == "exists" and not present:
                return False
            if op == "!" and present:
                return False
            if op in ("=", "in") and (not present or value not in values):
                return False
            if op in ("!=", "notin") and present and value in values:
                return False
        return True


def selector_to_string(selector: Obj | None) -> str:
    if not selector:
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(str(key))
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


@dataclasses.dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[tuple[tuple[str, ...], bool, str], ...]  # (path, equal?, value)

    @classmethod
    def parse(cls, text: str | None) -> FieldSelector:
        reqs: list[tuple[tuple[str, ...], bool, str]] = []
        for term in _split_top_level(text or ""):
            m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(==|=|!=)\s*(.*)$", term)
            if not m:
                raise bad_request(f"invalid field selector: {term!r}")
            reqs.append((tuple(m.group(1).split(".")), m.group(2) != "!=", m.group(3)))
        return cls(tuple(reqs))

    def pinned_name(self) -> str | None:
        """The name a `metadata.name=` term requires, if any (a get-like list or watch)."""
        return next((value for path, equal, value in self.requirements
                     if equal and path == ("metadata", "name")), None)

    def matches(self, obj: Obj) -> bool:
        for path, equal, value in self.requirements:
            actual = get_path(obj, path)
            text = (
                ""
                if actual is None
                else str(actual).lower()
                if isinstance(actual, bool)
                else str(actual)
            )
            if (text == value) != equal:
                return False
        return True


def get_path(obj: Any, path: Iterable[str]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def dotted(path: str) -> list[str]:
    return [p for p in path.strip().lstrip(".").split(".") if p]


def set_path(obj: Obj, path: list[str], value: Any) -> None:
    for part in path[:-1]:
        obj = obj.setdefault(part, {})
    obj[path[-1]] = value


Key = tuple[str, str]  # (namespace or "", name)


class LabelIndex:
    """The objects of one resource by label, so that a list or watch with a label selector
    looks at the objects it may match instead of every object (the kubelet simulator lists
    its ReplicaSet's pods at each change: a scan of every pod made that O(pods) per event)."""

    def __init__(self) -> None:
        self._by_pair: dict[tuple[str, str], set[Key]] = {}
        self._by_label: dict[str, set[Key]] = {}

    def replace(self, key: Key, old: dict[str, str] | None, new: dict[str, str] | None) -> None:
        """Record that the object at `key` changed labels from `old` to `new` (None: absent)."""
        old, new = old or {}, new or {}
        for label, value in old.items():
            if new.get(label) != value:
                _discard(self._by_pair, (label, value), key)
            if label not in new:
                _discard(self._by_label, label, key)
        for label, value in new.items():
            if old.get(label) != value:
                self._by_pair.setdefault((label, value), set()).add(key)
            if label not in old:
                self._by_label.setdefault(label, set()).add(key)

    def candidates(self, selector: LabelSelector) -> set[Key] | None:
        """A superset of the keys `selector` matches, or None when it requires no label
        (only negative terms, or none): then every object is a candidate."""
        found: set[Key] | None = None
        for label, op, values in selector.requirements:
            if op in ("=", "in"):
                keys: set[Key] = set()
                for value in values:
                    keys |= self._by_pair.get((label, value), set())
            elif op == "exists":
                keys = self._by_label.get(label, set())
            else:
                continue
            found = set(keys) if found is None else found & keys
            if not found:
                return found
        return found


def _discard(index: dict[Any, set[Key]], entry: Any, key: Key) -> None:
    keys = index.get(entry)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[entry]
