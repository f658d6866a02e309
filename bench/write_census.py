"""Which writes each Rollout cost in `bench/run_canaries.py`'s canary, beyond the floor.

Runs the canary bench (same arguments) with the API emulator's request handler wrapped to
note every write (POST, PUT, PATCH, DELETE) and its answer, then groups the canary's
writes by Rollout (`app-NNNNN` in the path or the body) and by kind:

    status <phase> step <currentStepIndex>   a PUT of rollouts/status (with its answer code)
    event <reason>                           a POST (or count PATCH) of an Event
    replicaset create / scale <replicas>     the Rollout's ReplicaSets
    service <name suffix>                    a Service's selector

It prints how many Rollouts cost how many writes, the writes above the floor of the
4-step canary (`FLOOR` below: 12, see docs/benchmarks.md "Writes per step, round 2") by
kind, summed over the Rollouts that cost more, and the write sequences of up to `--show`
of them. This is how the "0.03" of round 2 was taken apart (docs/benchmarks.md, round 3).

    PYTHONPATH=$PWD python3 bench/write_census.py --idle 2            # 100 Rollouts
    PYTHONPATH=$PWD python3 bench/write_census.py --idle 2 --ready-delay 3.5
"""

from __future__ import annotations

import collections
import json
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import run_canaries  # the bench, next to this file
from emulator_writes import note_writes

NAME = re.compile(r"app-\d{5}")
# The 12 writes of one Rollout's canary when every hold folds (round 2).
FLOOR = collections.Counter({
    "service canary": 1, "replicaset create": 1, "replicaset scale 1": 1,
    "status Paused step 1": 1, "replicaset scale 2": 1, "status Paused step 3": 1,
    "event RolloutStepChanged": 1, "service stable": 1, "status Healthy step 4": 1,
    "event RolloutPromoted": 1, "replicaset scale 0": 1, "status Healthy step 4 (counts)": 1,
})


def kind_of(method: str, path: str, text: str, seen: dict[str, str]) -> str:
    """What a write was, in the words of FLOOR (the second status Healthy is "counts")."""
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if "/events" in path:
        reason = body.get("reason") or "count"
        return f"event {reason}"
    if path.endswith("/status"):
        status = body.get("status") or {}
        kind = f"status {status.get('phase')} step {status.get('currentStepIndex')}"
        rollout = NAME.search(path)
        key = rollout.group(0) if rollout else ""
        if seen.get(key) == kind and kind.startswith("status Healthy"):
            return kind + " (counts)"
        seen[key] = kind
        return kind
    if "/replicasets" in path:
        if method == "POST":
            return "replicaset create"
        replicas = (body.get("spec") or {}).get("replicas")
        return f"replicaset scale {replicas}"
    if "/services/" in path:
        return "service " + path.rsplit("-", 1)[-1]
    return f"{method} {path.rsplit('/namespaces/', 1)[-1]}"


def main(argv: list[str]) -> int:
    show = 5
    if "--show" in argv:
        at = argv.index("--show")
        show = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2:]
    writes, resets = note_writes()
    code = run_canaries.main(argv)
    if len(resets) < 2:
        return code
    start, end = resets[0], resets[1]  # the canary: from its reset to the idle period's
    seen: dict[str, str] = {}
    by_rollout: dict[str, list[tuple[float, str, int]]] = collections.defaultdict(list)
    for at, method, path, text, status in writes:
        if not start <= at < end:
            continue
        found = NAME.search(path) or NAME.search(text)
        if found is None:
            continue
        by_rollout[found.group(0)].append((at - start, kind_of(method, path, text, seen), status))
    counts = collections.Counter(len(w) for w in by_rollout.values())
    print(f"\nwrites per Rollout in the canary ({len(by_rollout)} Rollouts): "
          + ", ".join(f"{n} x {k}" for k, n in sorted(counts.items())))
    extra: collections.Counter[str] = collections.Counter()
    missing: collections.Counter[str] = collections.Counter()
    over = []
    for name, sequence in sorted(by_rollout.items()):
        kinds = collections.Counter(kind + ("" if code < 300 else f" -> {code}")
                                    for _, kind, code in sequence)
        extra += kinds - FLOOR
        missing += FLOOR - kinds
        if len(sequence) > sum(FLOOR.values()):
            over.append(name)
    print(f"above the floor of {sum(FLOOR.values())}: {sum(extra.values())} writes in "
          f"{len(over)} Rollouts")
    for kind, n in extra.most_common():
        print(f"  + {n:4} {kind}")
    for kind, n in missing.most_common():
        print(f"  - {n:4} {kind} (not written)")
    for name in over[:show]:
        print(f"\n{name}:")
        for at, kind, status in by_rollout[name]:
            print(f"  {at:7.2f}s {kind}" + ("" if status < 300 else f" -> {status}"))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
