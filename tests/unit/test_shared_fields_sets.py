"""Frozen models share one "fields set" per set of given fields (rollouts.models.base), and
`model_fields_set` still says which fields each model was given."""

from __future__ import annotations

import copy
import pickle

from rollouts.models.rollout import CanaryStrategy, RolloutStatus


def test_models_given_the_same_fields_share_one_set() -> None:
    first = RolloutStatus.model_validate({"phase": "Healthy", "currentPodHash": "abc"})
    second = RolloutStatus.model_validate({"phase": "Paused", "currentPodHash": "def"})
    other = RolloutStatus.model_validate({"phase": "Paused"})
    assert first.model_fields_set is second.model_fields_set
    assert first.model_fields_set == {"phase", "current_pod_hash"}
    assert other.model_fields_set == {"phase"}


def test_a_copy_with_changes_gets_its_own_set_and_leaves_the_shared_one() -> None:
    first = RolloutStatus.model_validate({"phase": "Healthy"})
    second = RolloutStatus.model_validate({"phase": "Paused"})
    changed = first.model_copy(update={"current_pod_hash": "abc"})
    assert changed.model_fields_set == {"phase", "current_pod_hash"}
    assert first.model_fields_set == second.model_fields_set == {"phase"}
    for twin in (copy.copy(first), copy.deepcopy(first), pickle.loads(pickle.dumps(first))):
        assert twin == first and twin.model_fields_set == {"phase"}


def test_what_reads_the_fields_set_still_sees_what_was_given() -> None:
    given = CanaryStrategy.model_validate({"scaleDownDelaySeconds": 30})
    defaulted = CanaryStrategy.model_validate({})
    assert "scale_down_delay_seconds" in given.model_fields_set
    assert "scale_down_delay_seconds" not in defaulted.model_fields_set
    assert given.to_wire() == {**defaulted.to_wire(), "scaleDownDelaySeconds": 30}
