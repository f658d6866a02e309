"""`drop_managed_fields`: the field-management record taken out of a decoded body, in place."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.kube.cache import drop_managed_fields


def test_takes_out_managed_fields_and_nothing_else() -> None:
    body: dict[str, Any] = {
        "kind": "Rollout",
        "metadata": {"name": "web", "resourceVersion": "7", "managedFields": [
            {"manager": "rollouts", "operation": "Update", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:status": {}}}]},
        "spec": {"replicas": 2}, "status": {"phase": "Healthy"},
    }
    same = body
    drop_managed_fields(body)
    assert same is body  # in place: whoever holds the dict sees it trimmed
    assert body == {"kind": "Rollout", "metadata": {"name": "web", "resourceVersion": "7"},
                    "spec": {"replicas": 2}, "status": {"phase": "Healthy"}}


@pytest.mark.parametrize("obj", [None, {}, {"metadata": None}, {"metadata": {}}, "text", [1],
                                 {"metadata": {"name": "x"}}])
def test_anything_without_a_record_is_left_as_it_is(obj: Any) -> None:
    before = repr(obj)
    drop_managed_fields(obj)
    assert repr(obj) == before
