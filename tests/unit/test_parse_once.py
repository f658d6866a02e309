"""A Rollout is copied and parsed once per (uid, resourceVersion), and nothing a pass does
leaks into the copy the next pass of that version reuses (controller/parsed.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rollouts.controller import parsed as parsed_module
from rollouts.controller.config import OperatorConfig
from rollouts.controller.parsed import parse_once
from rollouts.controller.reconciler import Reconciler
from rollouts.controller.runtime import Runtime
from rollouts.models.rollout import parse_rollout
from tests.unit.test_execute import rollout_body
from tests.unit.test_reconcile import Cluster


def test_the_same_version_is_parsed_once_another_version_or_object_again() -> None:
    body = rollout_body(status={})
    first = parse_once(None, body)
    assert first.resource_version == "42" and first.snapshot == body
    assert first.snapshot is not body  # a copy: the watch may change the body in place
    assert parse_once(first, copy.deepcopy(body)) is first
    newer = copy.deepcopy(body)
    newer["metadata"]["resourceVersion"] = "43"
    assert parse_once(first, newer) is not first
    other = copy.deepcopy(body)
    other["metadata"]["uid"] = "another-object"  # deleted and created again
    assert parse_once(first, other) is not first
    del body["metadata"]["resourceVersion"]  # no version: never taken for another
    unversioned = parse_once(None, body)
    assert parse_once(unversioned, body) is not unversioned


class Counting:
    """Counts the copies and parses the reconciler makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.copies = self.parses = 0
        copy_, parse = parsed_module.plain_copy, parsed_module.parse_rollout

        def counting_copy(value: Any) -> Any:
            self.copies += 1
            return copy_(value)

        def counting_parse(body: Any) -> Any:
            self.parses += 1
            return parse(body)

        monkeypatch.setattr(parsed_module, "plain_copy", counting_copy)
        monkeypatch.setattr(parsed_module, "parse_rollout", counting_parse)


def same_as_fresh(reconciler: Reconciler, body: dict[str, Any]) -> bool:
    """The reconciler's parse of `body` equals a fresh copy and parse of it."""
    kept = reconciler.parsed
    assert kept is not None
    return kept.snapshot == body and kept.rollout == parse_rollout(copy.deepcopy(body))


async def test_passes_at_one_version_copy_and_parse_it_once_and_share_nothing_they_change(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The release pass holds its status (planner.write_folding rule 2), so the passes
    after it, as pods come, are at the Rollout's version of the release: they reuse its
    parse, plan on from the held status (a replaced copy, never the shared model) and
    leave the shared copy as the server has it."""
    cluster = Cluster.of_canary()
    async with cluster.rec.client() as client:
        runtime = Runtime(client=client, providers=None)  # type: ignore[arg-type]
        reconciler = Reconciler(OperatorConfig(), runtime, ("shop", "web"))
        await cluster.deploy_then_release(reconciler)
        counting = Counting(monkeypatch)
        await reconciler.reconcile(cluster.body, *cluster.caches(), {}, ({}, {}))
        assert (counting.copies, counting.parses) == (1, 1)
        assert reconciler.pending is not None  # planned on from, not written
        release = reconciler.parsed
        cluster.take_writes()
        assert same_as_fresh(reconciler, cluster.body)
        for _ in range(6):
            cluster.pods_ready()
            version = cluster.body["metadata"]["resourceVersion"]
            await reconciler.reconcile(cluster.body, *cluster.caches(), {}, ({}, {}))
            writes = cluster.take_writes()
            if cluster.body["metadata"]["resourceVersion"] != version:
                break  # the status was written: a new version
            assert reconciler.parsed is release  # the same version: its parse reused
            assert same_as_fresh(reconciler, cluster.body)
            assert not [w for w in writes if w[1].endswith("/status")]
        assert (counting.copies, counting.parses) == (1, 1)
        assert reconciler.pending is None and cluster.body["status"]["phase"] == "Paused"
        # The next pass is at the version our write made: copied once more, its spec (the
        # same) not validated again; then reused.
        for _ in range(3):
            await reconciler.reconcile(cluster.body, *cluster.caches(), {}, ({}, {}))
            assert cluster.take_writes() == []
        assert (counting.copies, counting.parses) == (2, 1)
        assert same_as_fresh(reconciler, cluster.body)


def test_a_new_version_with_the_same_spec_reads_only_metadata_and_status() -> None:
    first = parse_once(None, rollout_body(status={}))
    echo = rollout_body(status={"phase": "Progressing", "observedGeneration": 1})
    echo["metadata"]["resourceVersion"] = "43"
    reused = parse_once(first, echo)
    assert reused.rollout == parse_rollout(copy.deepcopy(echo))
    assert reused.rollout.status.phase == "Progressing"
    assert reused.rollout.metadata.resource_version == "43"
    edited = copy.deepcopy(echo)  # a spec change is validated again
    edited["metadata"]["resourceVersion"] = "44"
    edited["spec"]["strategy"]["canary"]["steps"] = [{"setWeight": 101}]
    invalid = parse_once(reused, edited)
    assert invalid.rollout == parse_rollout(copy.deepcopy(edited))
    assert not isinstance(invalid.rollout, type(reused.rollout))
    back = copy.deepcopy(edited)  # and an invalid spec stays invalid with a new status
    back["metadata"]["resourceVersion"] = "45"
    back["status"] = {"phase": "Degraded"}
    assert parse_once(invalid, back).rollout == parse_rollout(copy.deepcopy(back))


def test_an_echo_shares_the_spec_copy_and_a_spec_change_is_copied_anew() -> None:
    first = parse_once(None, rollout_body(status={}))
    echo = rollout_body(status={"phase": "Progressing"})
    echo["metadata"]["resourceVersion"] = "43"
    reused = parse_once(first, echo)
    assert reused.snapshot == echo and reused.snapshot["spec"] is first.snapshot["spec"]
    assert reused.snapshot["status"] is not echo["status"]  # the rest is a copy
    echo["metadata"]["labels"] = {"changed": "in place"}  # the watch's body, not ours
    assert "labels" not in reused.snapshot["metadata"]
    edited = copy.deepcopy(echo)
    edited["metadata"]["resourceVersion"] = "44"
    edited["spec"]["replicas"] = 7
    changed = parse_once(reused, edited)
    assert changed.snapshot["spec"] is not reused.snapshot["spec"]
    assert changed.snapshot["spec"]["replicas"] == 7 and changed.rollout.spec.replicas == 7
