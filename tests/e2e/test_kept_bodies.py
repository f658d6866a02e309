"""What the controller keeps of each Rollout between passes (docs/benchmarks.md, "Memory at
1,000 Rollouts, round 4").

kopf keeps the last body of every object with a daemon. The operator's event handlers take
`metadata.managedFields` out of it (about half of a Rollout's decoded body) and share its keys
and short strings with the other bodies (`rollouts.kube.cache.slim_kept_body`): they change the
raw event in place, which works only while kopf's daemons see that same dict. These tests
fail if kopf starts keeping a copy of its own, or if the managedFields come back some other
way, instead of the memory growing quietly. kopf's per-object event workers are told to
exit a second after their last event (kopf's default: 5 s), so fewer are alive at once.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import kopf
import pytest

from rollouts.operator import IDLE_WORKER_SECONDS
from tests.e2e.conftest import CountingSandbox
from tests.e2e.dsl import canary, image, pause, paused, scenario, set_weight
from tests.e2e.dsl import rollout as given_rollout

pytestmark = pytest.mark.e2e


def _kept_rollouts() -> list[tuple[str, dict[str, Any]]]:
    """(name, metadata) of every Rollout body kopf holds in this process."""
    gc.collect()
    kept = []
    for obj in gc.get_objects():
        if isinstance(obj, kopf.Body) and obj.get("kind") == "Rollout":
            metadata = dict(obj.get("metadata") or {})
            kept.append((str(metadata.get("name")), metadata))
    return kept


def test_the_rollout_bodies_kopf_keeps_carry_no_managed_fields(
        cluster: CountingSandbox) -> None:
    s = scenario(cluster).given(given_rollout("web", canary(set_weight(50), pause())))
    s.when(image("web:2")).then(paused(at_step=1))  # a daemon running, bodies after events
    assert cluster.rollout("web")["metadata"].get("managedFields"), (
        "the emulator no longer stores managedFields: this test shows nothing")
    kept = [metadata for name, metadata in _kept_rollouts() if name == "web"]
    assert kept, "no kopf.Body of the Rollout found: kopf keeps its bodies some other way"
    assert all("managedFields" not in metadata for metadata in kept), (
        "kopf keeps Rollout bodies with managedFields: its daemons no longer see the raw "
        "event the operator's rollout_changed handler trims (see rollouts.operator)")
    assert all(sys.intern(key) is key for metadata in kept for key in metadata), (
        "the kept bodies' keys are not shared (rollouts.kube.cache.slim_kept_body)")


def test_idle_event_workers_exit_after_a_second(cluster: CountingSandbox) -> None:
    scenario(cluster).given(given_rollout("web", canary(set_weight(50), pause())))
    gc.collect()
    settings = [obj for obj in gc.get_objects() if isinstance(obj, kopf.OperatorSettings)]
    assert settings, "kopf's settings not found: kopf keeps them some other way"
    # (any: another test's operator may have left its settings behind in this process)
    assert IDLE_WORKER_SECONDS in {s.queueing.idle_timeout for s in settings}
