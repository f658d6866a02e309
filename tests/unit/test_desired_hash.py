"""The pod-template hash of a Rollout is computed once per template object and kept with the
parsed Rollout (planner/manifests.desired_hash); another template is hashed anew."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from rollouts.planner import manifests
from rollouts.planner.manifests import desired_hash, pod_template_hash
from tests.unit.test_execute import rollout_body, valid


def test_the_hash_is_kept_while_the_template_is_the_same_object(
        monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[Any] = []
    original = manifests.pod_template_hash

    def counted(template: Any) -> str:
        hashed.append(template)
        return original(template)

    monkeypatch.setattr(manifests, "pod_template_hash", counted)
    rollout = valid(rollout_body())
    first = desired_hash(rollout)
    echo = dataclasses.replace(rollout, status=rollout.status.model_copy(
        update={"phase": "Paused"}))
    assert desired_hash(rollout) == desired_hash(echo) == first and len(hashed) == 1
    template = {**rollout.template, "metadata": {"labels": {"app": "web", "v": "2"}}}
    resolved = dataclasses.replace(rollout, template=template)  # e.g. a workloadRef's
    assert desired_hash(resolved) == original(template) != first and len(hashed) == 2
    assert desired_hash(valid(rollout_body())) == pod_template_hash(rollout.template)
