"""Importing libraries without the optional libraries they would pull in for nothing.

Some libraries import an optional dependency when it is installed, for a feature the
controller never uses; each costs memory for the life of the process (and start-up time):

* kopf imports the Kubernetes clients (`kubernetes`, `kubernetes_asyncio`, `pykube`) to
  recognise their objects in `kopf.adopt()` and to log in through them; the operator's login
  handler makes kopf's session instead. `kubernetes` alone was 12 MiB.
* httpcore (under httpx) imports trio, for programs that run on trio: 2.5 MiB.
* httpx imports click, rich and pygments for its own command-line tool (`httpx.main`): 3.8 MiB
  (docs/benchmarks.md, "Memory at 1,000 Rollouts, round 3").

`import_without(module)` imports `module` as if those were absent; they stay importable by
anything else afterwards (the CLI renders with rich). Only what is not imported yet is held
back, so calling it late does nothing wrong, it only saves nothing.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["UNUSED", "import_without"]

UNUSED: dict[str, tuple[str, ...]] = {
    "kopf": ("kubernetes", "kubernetes_asyncio", "pykube"),
    "httpcore": ("trio",),
    "httpx": ("click", "pygments", "rich"),
}


def import_without(module: str) -> Any:
    """`module`, imported as if the optional libraries it does not need here were absent."""
    blocked = [name for name in UNUSED[module] if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # "import fails" to importlib
    try:
        return importlib.import_module(module)
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
