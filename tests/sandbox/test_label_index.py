"""The emulator's label index finds what a full scan finds, through adds, relabels and
deletes (lists and watches with a label selector read only its candidates)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.sandbox.apiserver import ApiEmulator
from rollouts.sandbox.selectors import LabelIndex, LabelSelector

LABELS = st.dictionaries(st.sampled_from(["app", "tier", "hash"]),
                         st.sampled_from(["a", "b", "c"]), max_size=3)
SELECTORS = st.sampled_from([
    "", "app=a", "app==b", "app!=a", "app in (a,b)", "app notin (a)", "tier", "!tier",
    "app=a,tier=b", "app in (a,c),hash", "app=a,!hash", "hash=c,tier in (b,c)", "app=z",
])
OPS = st.lists(st.tuples(st.integers(0, 5), st.one_of(st.none(), LABELS)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(OPS, SELECTORS)
def test_candidates_cover_every_match(ops: list[tuple[int, dict[str, str] | None]],
                                      text: str) -> None:
    index, live = LabelIndex(), {}
    for number, labels in ops:
        key = ("ns", f"o{number}")
        index.replace(key, live.get(key), labels)
        if labels is None:
            live.pop(key, None)
        else:
            live[key] = labels
    selector = LabelSelector.parse(text)
    matching = {key for key, labels in live.items() if selector.matches(labels)}
    candidates = index.candidates(selector)
    assert candidates is None or matching <= candidates <= set(live)
    terms = [op for _, op, _ in selector.requirements]
    if terms and all(op in ("=", "in", "exists") for op in terms):
        assert candidates == matching  # positive terms only: the index alone decides


def test_lists_by_label_follow_relabels_and_deletes() -> None:
    api = ApiEmulator()
    for name, app in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        api.create_object("", "v1", "configmaps", "default",
                          {"metadata": {"name": name, "labels": {"app": app}}})
    names = lambda sel: [o["metadata"]["name"]  # noqa: E731
                         for o in api.list_objects("", "v1", "configmaps", "default", sel)]
    assert names("app=a") == ["a1", "a2"]
    api.patch_object("", "v1", "configmaps", "default", "a1",
                     {"metadata": {"labels": {"app": "b"}}})
    assert (names("app=a"), names("app in (b)")) == (["a2"], ["a1", "b1"])
    api.delete_object("", "v1", "configmaps", "default", "b1")
    assert (names("app=b"), names("app"), names("!app")) == (["a1"], ["a1", "a2"], [])
    assert api.list_objects("", "v1", "configmaps", "default",
                            field_selector="metadata.name=a2")[0]["metadata"]["name"] == "a2"


def test_garbage_collection_follows_the_owner_index() -> None:
    api = ApiEmulator()
    owners = [api.create_object("", "v1", "configmaps", "default", {"metadata": {"name": n}})
              for n in ("a", "b")]
    refs = [{"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"],
             "uid": o["metadata"]["uid"]} for o in owners]
    api.create_object("", "v1", "secrets", "default",
                      {"metadata": {"name": "both", "ownerReferences": refs}})
    api.create_object("", "v1", "secrets", "default",
                      {"metadata": {"name": "only-a", "ownerReferences": refs[:1]}})
    api.delete_object("", "v1", "configmaps", "default", "a")
    left = {s["metadata"]["name"]: s for s in api.list_objects("", "v1", "secrets", "default")}
    assert list(left) == ["both"]  # its other owner lives: only the reference goes
    assert [r["name"] for r in left["both"]["metadata"]["ownerReferences"]] == ["b"]
    api.delete_object("", "v1", "configmaps", "default", "b")
    assert api.list_objects("", "v1", "secrets", "default") == []
