"""Settings shared by every test."""

from __future__ import annotations

from hypothesis import settings

# Hypothesis fails an example that runs longer than its deadline (200 ms by default): a
# wall-clock assertion, which a loaded CI machine breaks at random (seen on
# tests/unit/test_plain_copy.py). Tests never assert speed here; bench/ measures it.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")
