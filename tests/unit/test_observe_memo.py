"""observe reads a watched ReplicaSet or Service once per resourceVersion: the views are
kept with the parsed Rollout for the next pass (kube/observe.py), and what a pass sees is
always what a fresh read of the same bodies gives."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from rollouts.kube import observe as observe_module
from rollouts.kube.analysis import Templates
from rollouts.kube.observe import observe
from rollouts.models.rollout import ValidRollout
from rollouts.planner.types import Observed
from tests.unit.test_execute import rollout_body, rs_body, svc_body, valid


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the bodies observe read into views."""
    names: list[str] = []
    for function in ("replica_set_view", "service_view"):
        original = getattr(observe_module, function)

        def counted(body: Any, _original: Any = original) -> Any:
            names.append(body["metadata"]["name"])
            return _original(body)

        monkeypatch.setattr(observe_module, function, counted)
    return names


def seen(rollout: ValidRollout, replica_sets: list[dict[str, Any]],
         services: dict[str, Any]) -> Observed:
    return observe(rollout, replica_sets=replica_sets, services=services, analysis_runs=(),
                   templates=Templates())


def fresh(rollout: ValidRollout, replica_sets: list[dict[str, Any]],
          services: dict[str, Any]) -> Observed:
    """The same bodies observed with nothing kept."""
    return seen(dataclasses.replace(rollout, memo={}), copy.deepcopy(replica_sets),
                copy.deepcopy(services))


def test_unchanged_bodies_are_read_once_and_a_new_version_again(reads: list[str]) -> None:
    rollout = valid(rollout_body())
    sets = [rs_body("web-bbb", "bbb", 1, "5"), rs_body("web-aaa", "aaa", 3, "4")]
    services = {"web": svc_body("web", {"app": "web"}, "2"), "web-canary": None}
    first = seen(rollout, sets, services)
    assert sorted(reads) == ["web", "web-aaa", "web-bbb"]
    reads.clear()
    assert seen(rollout, sets, services) == first
    echo = dataclasses.replace(rollout, status=rollout.status.model_copy(
        update={"phase": "Paused"}))  # the next version of the same spec keeps them
    assert seen(echo, sets, services) == first and reads == []
    sets[0] = rs_body("web-bbb", "bbb", 2, "6")  # scaled: a new resourceVersion
    services["web-canary"] = svc_body("web-canary", {"app": "web"}, "7")  # created
    later = seen(echo, sets, services)
    assert sorted(reads) == ["web-bbb", "web-canary"]
    assert later == fresh(echo, sets, services)
    assert [rs.spec_replicas for rs in later.replica_sets] == [3, 2]


def test_only_this_passs_bodies_are_kept_and_unversioned_ones_are_read_anew(
        reads: list[str]) -> None:
    rollout = valid(rollout_body())
    unversioned = rs_body("web-ccc", "ccc", 1, "")
    seen(rollout, [rs_body("web-aaa", "aaa", 3, "4"), unversioned], {})
    seen(rollout, [unversioned], {})  # web-aaa gone (deleted)
    assert rollout.memo["replica_sets"] == {}
    assert reads == ["web-aaa", "web-ccc", "web-ccc"]


def test_a_body_recreated_under_its_name_is_read_again(reads: list[str]) -> None:
    rollout = valid(rollout_body())
    first = svc_body("web", {"app": "web"}, "2")
    first["metadata"]["uid"] = "first"
    seen(rollout, [], {"web": first})
    again = svc_body("web", {"app": "other"}, "2")
    again["metadata"]["uid"] = "second"
    observed = seen(rollout, [], {"web": again})
    assert reads == ["web", "web"]
    view = observed.services["web"]
    assert view is not None and view.selector == {"app": "other"}


async def test_a_pass_reads_its_replica_sets_once_for_the_pods_and_the_plan(
        reads: list[str]) -> None:
    from rollouts.kube.pods import read_pods
    from tests.unit.test_execute import NOW

    rollout = valid(rollout_body())
    sets = [rs_body("web-aaa", "aaa", 3, "4")]
    assert await read_pods(None, rollout, sets, NOW) is None  # type: ignore[arg-type]
    observed = seen(rollout, sets, {})
    assert reads == ["web-aaa"] and [rs.name for rs in observed.replica_sets] == ["web-aaa"]
