"""Properties every router keeps, over random sequences of intents (hypothesis).

- the objects hold what was asked: read back, the canary weight is the intent's, and the two
  weights written sum to the max weight;
- writes are idempotent: after applying them (jsonpatch, resourceVersion-guarded), asking
  again gives no write;
- only owned fields change on the user's objects (weights, the router's own routes and
  annotation): stripped of those, every user object equals what it was;
- finalize leaves 100% stable, no managed route, and none of the router's own objects.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollouts.planner.routing import (
    HeaderMatch,
    HeaderRoute,
    MirrorRoute,
    RequestMatch,
    TrafficIntent,
)
from tests.unit.traffic.cases import CASES, MANAGED, OWNER, Case, Store, key_of

header_routes = st.lists(st.sampled_from(MANAGED[:2]), unique=True, max_size=2).map(
    lambda names: tuple(HeaderRoute(n, (HeaderMatch("x-canary", n, "exact"),)) for n in names))
mirror_routes = st.lists(st.just(MANAGED[2]), max_size=1).map(
    lambda names: tuple(MirrorRoute(n, 50, (RequestMatch(path="/api"),)) for n in names))


@st.composite
def intents(draw: Any, case: Case, max_weight: int) -> TrafficIntent:
    weight = draw(st.integers(0, max_weight))
    return TrafficIntent(
        canary_weight=weight, stable_weight=max_weight - weight, max_weight=max_weight,
        header_routes=draw(header_routes) if case.headers else (),
        mirror_routes=draw(mirror_routes) if case.mirrors else (),
        canary_hash=draw(st.sampled_from([None, "c1", "c2"])),
        stable_hash=draw(st.sampled_from([None, "s1"])))


def _user_objects(store: Store) -> dict[Any, Any]:
    return {k: v for k, v in store.objects.items() if not _ours(v)}


def _ours(body: dict[str, Any]) -> bool:
    return any(r.get("uid") == OWNER["uid"] for r in body["metadata"].get("ownerReferences", []))


def _managed_names(body: Any) -> set[str]:
    """Every `name` anywhere in the object that is a managed route name."""
    if isinstance(body, dict):
        own = {body["name"]} if body.get("name") in MANAGED else set()
        return own.union(*(_managed_names(v) for v in body.values()))
    if isinstance(body, list):
        return set().union(*(_managed_names(v) for v in body))
    return set()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), max_weight=st.sampled_from([100, 1000]))
def test_router_properties(case: Case, data: Any, max_weight: int) -> None:
    router = case.router(max_weight)
    store = Store.of(case.objects)
    assert router.problems(store.observe(router)) == []
    before = {k: case.strip(v) for k, v in _user_objects(store).items()}

    for intent in data.draw(st.lists(intents(case, max_weight), min_size=1, max_size=3)):
        assert intent.canary_weight + intent.stable_weight == intent.max_weight
        store.apply(router.writes(store.observe(router), intent))
        observed = store.observe(router)
        assert router.verified_weight(observed) == intent.canary_weight
        assert router.writes(observed, intent) == ()
        assert router.problems(observed) == []
        after = {k: case.strip(v) for k, v in _user_objects(store).items()}
        assert after == before
        wanted = {r.name for r in (*intent.header_routes, *intent.mirror_routes)}
        if case.name != "nginx":  # NGINX holds a header route as annotations, not by name
            assert set().union(*map(_managed_names, store.objects.values())) == wanted

    store.apply(router.finalize(store.observe(router)))
    assert not [k for k, v in store.objects.items() if _ours(v)]
    assert set().union(*map(_managed_names, store.objects.values())) == set()
    assert {k: case.strip(v) for k, v in store.objects.items()} == before
    observed = store.observe(router)
    if not router.objects() or all(observed.get(k) for k in router.objects(observed)):
        assert router.verified_weight(observed) == 0
    assert router.finalize(observed) == ()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_stale_write_conflicts(case: Case) -> None:
    """Every patch is led by the observed resourceVersion: a changed object refuses it."""
    router = case.router()
    store = Store.of(case.objects)
    store.apply(router.writes(store.observe(router), TrafficIntent(10, 90)))
    observed = store.observe(router)
    writes = router.writes(observed, TrafficIntent(20, 80))
    patches = [w for w in writes if w.op == "patch"]
    assert patches
    for write in patches:
        assert write.patch[0] == {
            "op": "replace", "path": "/metadata/resourceVersion",
            "value": store.objects[write.key]["metadata"]["resourceVersion"]}
        store.put(store.objects[write.key])  # someone else wrote it meanwhile
    from tests.unit.traffic.cases import Conflict
    with pytest.raises(Conflict):
        store.apply(patches)


def test_keys_of_cases_are_unique() -> None:
    for case in CASES:
        assert len({key_of(o) for o in case.objects}) == len(case.objects)
