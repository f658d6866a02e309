"""The writes one Rollout costs in `bench/run_canaries.py`'s canary, in order.

Runs the canary bench (same arguments; default one Rollout) with the API emulator's request
handler wrapped to note every request that is not a read or a watch, then prints those about
the first Rollout (`app-00000`) from the image change on: time, method, path and the start
of the body. This is how docs/benchmarks.md's per-transition write tables were made.

    PYTHONPATH=$PWD python3 bench/trace_writes.py --rollouts 1 --idle 2
"""

from __future__ import annotations

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import run_canaries  # the bench, next to this file
from emulator_writes import note_writes

NAME = "app-00000"


def summary(text: str) -> str:
    """What a write says: an Event's reason and message, a status's phase, step and
    message, a scale's replicas; else the start of the body."""
    try:
        body = json.loads(text)
    except ValueError:
        return text[:120]
    if not isinstance(body, dict):  # a JSON patch
        return text[:120]
    if body.get("kind") == "Event":
        return f"{body.get('reason')}: {body.get('message')}"
    if "status" in body and body.get("kind") == "Rollout":
        status = body["status"]
        return (f"phase={status.get('phase')} step={status.get('currentStepIndex')} "
                f"message={status.get('message')!r}")
    spec = body.get("spec") or {}
    if "replicas" in spec or "selector" in spec:
        return json.dumps({k: spec[k] for k in ("replicas", "selector") if k in spec})
    return text[:120]


def main(argv: list[str]) -> int:
    writes, resets = note_writes()  # the bench resets the counters when the canary starts
    code = run_canaries.main(argv)
    t0 = resets[0] if resets else 0.0  # the second one starts the idle period
    canary = [w for w in writes if w.at >= t0 and (NAME in w.path or NAME in w.text)]
    print(f"\nwrites about {NAME} in the canary: {len(canary)}")
    for write in canary:
        print(f"{write.at - t0:7.2f}s {write.method:6} "
              f"{write.path.rsplit('/namespaces/', 1)[-1]}\n"
              f"          {summary(write.text)}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
