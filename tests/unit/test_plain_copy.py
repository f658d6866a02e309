"""`plain_copy`: a deep copy of API data, cheaper than copy.deepcopy and as independent."""

from __future__ import annotations

import copy
import json
import types
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rollouts.kube.cache import compact, plain_copy, trim_replica_set

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30)


@given(JSON, st.sampled_from([plain_copy, compact]))
def test_equal_to_deepcopy_and_shares_no_container(value: Any, how: Any) -> None:
    copied = how(value)
    assert copied == copy.deepcopy(value)

    def containers(v: Any) -> list[int]:
        if isinstance(v, dict):
            return [id(v), *(i for x in v.values() for i in containers(x))]
        if isinstance(v, list):
            return [id(v), *(i for x in v for i in containers(x))]
        return []

    assert not set(containers(copied)) & set(containers(value))


def test_mapping_views_and_tuples_become_plain_data() -> None:
    view = types.MappingProxyType({"metadata": {"name": "web"}, "items": ({"a": 1},)})
    copied = plain_copy(view)
    assert copied == {"metadata": {"name": "web"}, "items": [{"a": 1}]}
    assert type(copied) is dict
    copied["metadata"]["name"] = "other"
    assert view["metadata"]["name"] == "web"


def test_compact_bodies_share_their_keys_and_short_strings() -> None:
    # Decoded apart (as watch events are), two bodies share no string; compacted, they do.
    raw = ('{"metadata": {"name": "web-1", "labels": {"app": "web"}}, '
           '"spec": {"template": {"spec": {"containers": [{"image": "registry/web:v2"}]}}}}')
    first, second = (trim_replica_set(json.loads(raw)) for _ in range(2))
    assert first == second == trim_replica_set(json.loads(raw))
    assert first["metadata"]["labels"]["app"] is second["metadata"]["labels"]["app"]
    assert next(iter(first["metadata"]["labels"])) is next(iter(second["metadata"]["labels"]))
    image = first["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image is second["spec"]["template"]["spec"]["containers"][0]["image"]
    long_value = "x" * 100  # long strings (e.g. a config blob) are kept as they are
    assert compact({"a": long_value})["a"] is long_value
