"""The e2e `sandbox` fixture, for the entrypoint test."""

from tests.e2e.conftest import sandbox

__all__ = ["sandbox"]
