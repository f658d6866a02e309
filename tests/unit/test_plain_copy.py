"""`plain_copy`: a deep copy of API data, cheaper than copy.deepcopy and as independent."""

from __future__ import annotations

import copy
import types
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rollouts.kube.cache import plain_copy

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30)


@given(JSON)
def test_equal_to_deepcopy_and_shares_no_container(value: Any) -> None:
    copied = plain_copy(value)
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
