"""What is taken out of (and shared in) the bodies the controller keeps: `drop_managed_fields`,
`slim_kept_body` (kopf's kept bodies, changed in place) and the Services' shared owner
entries (`trim_service`)."""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

import pytest

from rollouts.kube.cache import drop_managed_fields, slim_kept_body, trim_service
from rollouts.kube.fieldowners import SELECTOR_FIELD, field_owner


def _rollout(name: str) -> dict[str, Any]:
    return {
        "kind": "Rollout",
        "metadata": {"name": name, "resourceVersion": "7", "managedFields": [
            {"manager": "rollouts", "operation": "Update", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:status": {}}}]},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": name}}}},
        "status": {"phase": "Healthy", "conditions": [{"type": "Available"}]},
    }


def test_takes_out_managed_fields_and_nothing_else() -> None:
    body = _rollout("web")
    same = body
    drop_managed_fields(body)
    assert same is body  # in place: whoever holds the dict sees it trimmed
    expected = _rollout("web")
    del expected["metadata"]["managedFields"]
    assert body == expected


@pytest.mark.parametrize("obj", [None, {}, {"metadata": None}, {"metadata": {}}, "text", [1],
                                 {"metadata": {"name": "x"}}])
def test_anything_without_a_record_is_left_as_it_is(obj: Any) -> None:
    before = repr(obj)
    drop_managed_fields(obj)
    slim_kept_body(obj)
    assert repr(obj) == before


def test_a_slim_body_is_the_same_dict_without_managed_fields_and_with_shared_keys() -> None:
    # Decoded separately, as two watch events are: equal keys are distinct strings.
    first, second = (json.loads(json.dumps(_rollout(n))) for n in ("web", "api"))
    assert first["status"]["conditions"][0] is not second["status"]["conditions"][0]
    held = first
    expected = copy.deepcopy(first)
    del expected["metadata"]["managedFields"]
    slim_kept_body(first)
    slim_kept_body(second)
    assert held is first and first == expected
    (key_1,), (key_2,) = first["status"]["conditions"][0], second["status"]["conditions"][0]
    assert key_1 is key_2 is sys.intern("type")
    assert first["status"]["phase"] is second["status"]["phase"]


def _service(name: str, owner: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": "3",
                         "managedFields": [{
                             "manager": owner, "operation": "Update", "fieldsType": "FieldsV1",
                             "fieldsV1": {"f:spec": {"f:selector": {"f:app": {}}}}}]},
            "spec": {"selector": {"app": name}}}


def test_services_trimmed_with_one_dict_of_entries_share_each_owners_entry() -> None:
    entries: dict[str, dict[str, Any]] = {}
    web, api, other = (trim_service(_service(n, o), entries)
                       for n, o in (("web", "kubectl"), ("api", "kubectl"), ("db", "helm")))
    assert web["metadata"]["managedFields"][0] is api["metadata"]["managedFields"][0]
    assert [field_owner(s, SELECTOR_FIELD) for s in (web, api, other)] == [
        "kubectl", "kubectl", "helm"]
    alone = trim_service(_service("web", "kubectl"))  # without the shared dict: its own
    assert alone == web and alone["metadata"]["managedFields"][0] is not (
        web["metadata"]["managedFields"][0])
