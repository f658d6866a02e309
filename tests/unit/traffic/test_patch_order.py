"""The writes the controller builds do not depend on Python's hash seed.

Each seed runs in its own interpreter (PYTHONHASHSEED is read at start-up), builds every
router's golden writes, a patch changing many sibling keys at once and a pod-metadata merge
patch removing many keys, and prints them as JSON in the order built (keys not sorted).
The bytes must be the same for every seed: a set iterated while building a patch (as
jsonpatch's own diff does with a mapping's keys) shows up as a difference. `json_diff`, the
diff the routers use, is also checked by property: its operations give the document wanted.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonpatch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rollouts.traffic.json_diff import json_diff

ROOT = Path(__file__).resolve().parents[3]
SEEDS = ("0", "1", "2", "3", "7", "42")

_BUILD = r'''
import dataclasses, json
from rollouts.planner.pod_metadata import key_changes
from rollouts.planner.routing import ObjectKey, RouteSnapshot
from rollouts.planner.types import PodMetadataView
from rollouts.traffic.common import guarded_patch
from tests.unit.traffic import test_builders, test_extra_destinations
from tests.unit.traffic.cases import BY_NAME

def plain(write):
    return [dataclasses.astuple(write.key), write.op, write.manifest, list(write.patch)]

out = {}
for name in sorted(BY_NAME):
    out["golden/" + name] = [plain(w) for w in test_builders.writes_for(name)]
for name in test_extra_destinations.ABLE:
    out["extra/" + name] = [plain(w) for w in test_extra_destinations.writes_for(name)]

letters = "abcdefghij"
observed = {"apiVersion": "v1", "kind": "Thing",
            "metadata": {"name": "t", "resourceVersion": "5",
                         "annotations": {f"old-{c}": c for c in letters},
                         "labels": {f"keep-{c}": c for c in letters}},
            "spec": {f"field-{c}": 1 for c in letters}}
desired = {"apiVersion": "v1", "kind": "Thing",
           "metadata": {"name": "t", "resourceVersion": "5",
                        "annotations": {f"new-{c}": c for c in letters},
                        "labels": {f"keep-{c}": c.upper() for c in letters}},
           "spec": {f"field-{c}": 2 for c in letters}, **{f"top-{c}": c for c in letters}}
snapshot = RouteSnapshot(ObjectKey("v1", "Thing", "t", "default"), observed)
out["siblings"] = plain(guarded_patch(snapshot, desired))

before = PodMetadataView(labels=tuple((f"role-{c}", c) for c in letters))
current = {f"role-{c}": c for c in letters}
out["pod-metadata"] = key_changes(before, PodMetadataView(), current=current,
                                  keep=frozenset(), kind="labels")
print(json.dumps(out))
'''


def _built_with_seed(seed: str) -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": seed,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _BUILD], cwd=ROOT, env=env,
                          capture_output=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_patches_are_the_same_bytes_for_every_hash_seed() -> None:
    built = {seed: _built_with_seed(seed) for seed in SEEDS}
    first = built[SEEDS[0]]
    assert b'"siblings"' in first and b'"golden/istio-host"' in first
    differing = [seed for seed, text in built.items() if text != first]
    assert not differing, f"PYTHONHASHSEED {differing} built other bytes than {SEEDS[0]}"


_SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", "b", "c"])
_KEYS = st.sampled_from(["a", "b", "c", "d", "e", "weight", "name"])
_DOCS = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_KEYS, inner, max_size=5), max_leaves=20)


def _text(document: Any) -> str:
    return json.dumps(document, sort_keys=True)  # 1 and True differ, as in JSON


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, _DOCS, max_size=5), st.dictionaries(_KEYS, _DOCS, max_size=5))
# jsonpatch.make_patch gets this one wrong with some hash seeds: it moves /a/0 to /weight/a
# after removing /a/0 (the `move` detection of python-json-patch issues #138, #179).
@example({"b": None, "a": ["a", None], "weight": {}}, {"a": [], "weight": {"a": "a"}})
@example({"a": 1, "b": [True]}, {"a": True, "b": [1]})
def test_json_diff_turns_one_document_into_the_other(src: dict[str, Any],
                                                     dst: dict[str, Any]) -> None:
    ops = json_diff(copy.deepcopy(src), copy.deepcopy(dst))
    assert _text(jsonpatch.apply_patch(copy.deepcopy(src), ops)) == _text(dst)
    assert (ops == []) == (_text(src) == _text(dst))
    assert all(op["op"] in ("add", "remove", "replace") for op in ops)


def test_json_diff_lists_sibling_keys_in_document_order() -> None:
    src = {"metadata": {"annotations": {"z": "1", "a": "2", "m": "3"}}, "spec": {"w": 1}}
    dst = {"metadata": {"annotations": {"k": "0", "z": "1", "b": "9"}}, "spec": {"w": 2}}
    assert json_diff(src, dst) == [
        {"op": "remove", "path": "/metadata/annotations/a"},
        {"op": "remove", "path": "/metadata/annotations/m"},
        {"op": "add", "path": "/metadata/annotations/k", "value": "0"},
        {"op": "add", "path": "/metadata/annotations/b", "value": "9"},
        {"op": "replace", "path": "/spec/w", "value": 2},
    ]
