"""Drive N canary Rollouts through a full canary on the sandbox and print what it cost.

    python bench/run_canaries.py                  # 100 Rollouts, over HTTPS
    python bench/run_canaries.py --rollouts 1000 --json
    python bench/run_canaries.py --plain-http     # the emulator without TLS

The sandbox (API emulator + kubelet simulator) runs in this process; the controller is the
real `rollouts controller` in a subprocess, so that its CPU time and peak RSS can be read from
/proc/<pid>/stat and /proc/<pid>/status, apart from the sandbox's. The emulator serves HTTPS
by default, with a CA made at start and written into the kubeconfig the controller reads (as
a cluster's API server; TLS is a large share of a client's cost per request).

N Rollouts (each with its own canary and stable Service unless --no-services) are created
and left to become Healthy; then the image of all of them is changed at once and every
Rollout goes through

    setWeight 50 -> pause {duration: P} -> setWeight 100 -> pause {duration: P} -> promoted

What is printed (see docs/benchmarks.md for recorded runs):

* lags, p50 / p99 / max, each "scheduled time -> time the effect was committed":
  - image -> canary RS:      the spec patch -> the canary ReplicaSet is created;
  - image -> status:         the spec patch -> status.currentPodHash names the new revision;
  - pause end -> advance:    pauseConditions[].startTime + duration -> currentStepIndex moves on
                             (the start time has second precision, as in Argo; the controller
                             schedules on that stamp, and so does this measurement);
  - pods ready -> advance:   the last change of the Rollout's ReplicaSets (the kubelet making
                             the last needed pod available) -> the setWeight step (or the
                             promotion) is recorded as done;
  and, for scale, image -> Healthy: the whole canary of one Rollout.
* API requests per Rollout per step: every HTTP request the emulator served between the image
  change and the end of the canary (all Healthy, no more writes for a second), divided by
  N x steps, by verb and resource. (The end waits for QUIET_SECONDS with no write, so
  that status writes the controller holds back for a moment are counted.)
* controller CPU seconds (user + sys) for the canary and since start, and per step
  transition (canary CPU / (N x steps)), its peak RSS (VmHWM), the CPU of this process
  (emulator + kubelet + recorder, also per step transition) and the requests and CPU of an
  idle period after the canary (a quiet Rollout should cost nothing).

Times come from one clock (time.time() in this process) and are stamped when the in-process
watch of this script receives the write, a few milliseconds at most after the emulator
committed it. This is a benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import pathlib
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

from canary_watch import Recorder, ReplicaSetPoint, RolloutPoint  # noqa: E402  (next to this file)
from proc_watch import Sampler, pin, proc_sample, run_queue_wait, split_cpus  # noqa: E402

from rollouts.models.rollout import GROUP, VERSION  # noqa: E402
from rollouts.planner.write_folding import FOLD_SECONDS  # noqa: E402
from rollouts.sandbox.cluster import Sandbox  # noqa: E402

# Quiet long enough for a held minor status write (rollouts.planner.write_folding) to land
# in the phase that caused it.
QUIET_SECONDS = 1.0 + FOLD_SECONDS



class BenchError(RuntimeError):
    pass


# --- the controller process -----------------------------------------------------------------


def controller_pid(sandbox: Sandbox) -> int:
    process = sandbox.controller_process
    if process is None:
        raise BenchError("the controller subprocess is not running")
    return int(process.pid)


def check_alive(sandbox: Sandbox) -> None:
    process = sandbox.controller_process
    if process is not None and process.poll() is not None:
        log = (sandbox.workdir / "controller.log").read_text(errors="replace")
        tail = "\n".join(log.splitlines()[-30:])
        raise BenchError(f"the controller exited with {process.returncode}:\n{tail}")


# --- the workload ---------------------------------------------------------------------------


def manifests(index: int, *, replicas: int, pause: int, services: bool) -> list[dict[str, Any]]:
    name = f"app-{index:05d}"
    labels = {"app": name}
    canary: dict[str, Any] = {
        "scaleDownDelaySeconds": 0,
        "maxSurge": 1,
        "maxUnavailable": 0,
        "steps": [
            {"setWeight": 50},
            {"pause": {"duration": f"{pause}s"}},
            {"setWeight": 100},
            {"pause": {"duration": f"{pause}s"}},
        ],
    }
    docs: list[dict[str, Any]] = []
    if services:
        canary["canaryService"] = f"{name}-canary"
        canary["stableService"] = f"{name}-stable"
        for service in (f"{name}-canary", f"{name}-stable"):
            docs.append({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": service},
                "spec": {"selector": dict(labels), "ports": [{"port": 80, "targetPort": 8080}]},
            })
    docs.append({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": "app", "image": "example/app:1.0",
                                         "ports": [{"containerPort": 8080}]}]},
            },
            "strategy": {"canary": canary},
        },
    })
    return docs


STEP_KINDS = ("setWeight", "pause", "setWeight", "pause")


# --- statistics -----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: list[float]) -> dict[str, float | int]:
    return {
        "n": len(values),
        "p50": percentile(values, 0.50),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else float("nan"),
    }


def parse_stamp(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Lags:
    image_to_rs: list[float] = field(default_factory=list)
    image_to_status: list[float] = field(default_factory=list)
    pause_to_advance: list[float] = field(default_factory=list)
    ready_to_advance: list[float] = field(default_factory=list)
    image_to_healthy: list[float] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def measure_lags(recorder: Recorder, names: list[str], old_hash: dict[str, str],
                 old_generation: dict[str, int], pause: int) -> Lags:
    by_rollout: dict[str, list[tuple[float, RolloutPoint]]] = collections.defaultdict(list)
    for t, point in recorder.rollouts:
        by_rollout[point.name].append((t, point))
    by_owner: dict[str, list[tuple[float, ReplicaSetPoint]]] = collections.defaultdict(list)
    for t, rs in recorder.replica_sets:
        by_owner[rs.owner].append((t, rs))

    lags = Lags()
    for name in names:
        events = by_rollout[name]
        sets = by_owner[name]
        patched = next((t for t, p in events if p.generation > old_generation[name]), None)
        healthy = next(((t, p) for t, p in events if patched is not None and t >= patched
                        and p.phase == "Healthy" and p.stable and p.stable != old_hash[name]
                        and p.observed_generation == p.generation), None)
        if patched is None or healthy is None:
            lags.missing.append(name)
            continue
        new_hash = healthy[1].stable
        lags.image_to_healthy.append(healthy[0] - patched)
        created = next((t for t, rs in sets if t >= patched and rs.hash == new_hash), None)
        if created is not None:
            lags.image_to_rs.append(created - patched)
        on_new = [(t, p) for t, p in events if t >= patched and p.pod_hash == new_hash]
        if on_new:
            lags.image_to_status.append(on_new[0][0] - patched)
        entered = on_new[0][0] if on_new else patched
        for index, kind in enumerate([*STEP_KINDS, "promotion"]):
            done_at = next((t for t, p in on_new
                            if (p.step is not None and p.step > index)
                            or (p.phase == "Healthy" and p.stable == new_hash)), None)
            if kind == "promotion":
                done_at = healthy[0]
            if done_at is None:
                break
            if kind == "pause":
                starts = [p.pause_start for t, p in on_new
                          if t < done_at and p.step == index and p.pause_start]
                if starts:
                    lags.pause_to_advance.append(done_at - (parse_stamp(starts[-1]) + pause))
            else:
                # The step was done by the ReplicaSet change the controller last saw; when
                # nothing changed after the step was entered it was done on entry.
                trigger = max((t for t, _ in sets if t <= done_at), default=None)
                if trigger is not None and trigger > entered:
                    lags.ready_to_advance.append(done_at - trigger)
            entered = done_at
    return lags


# --- the run --------------------------------------------------------------------------------


def controller_failures(sandbox: Sandbox) -> str:
    """The controller's failed passes by error type (from its JSON log), for a timeout."""
    path = sandbox.workdir / "controller.log"
    counts: collections.Counter[str] = collections.Counter()
    for line in path.read_text(errors="replace").splitlines() if path.exists() else ():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("message") == "pass failed":
            counts[str(record.get("error_type"))] += 1
    return ", ".join(f"{n} x {kind}" for kind, n in counts.most_common()) or "none"


def wait_until(what: str, check: Any, timeout: float, sandbox: Sandbox,
               progress: Any = None, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        check_alive(sandbox)
        if time.monotonic() > deadline:
            done = f"; done: {progress()}" if progress is not None else ""
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}{done}; "
                             f"failed controller passes: {controller_failures(sandbox)}")
        time.sleep(interval)


def wait_quiet(recorder: Recorder, quiet: float, timeout: float) -> None:
    """Until no Rollout or ReplicaSet changed for `quiet` seconds (or `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.time() - recorder.last_event < quiet and time.monotonic() < deadline:
        time.sleep(0.1)


def requests_table(counter: collections.Counter[tuple[str, str]],
                   per: float) -> list[dict[str, Any]]:
    return [
        {"verb": verb, "resource": resource, "count": count, "per_rollout_step": count / per}
        for (verb, resource), count in counter.most_common()
    ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, steps = args.rollouts, len(STEP_KINDS)
    started = time.time()
    with Sandbox(ready_delay=args.ready_delay, tls=not args.plain_http) as sandbox:
        emulator = sandbox.emulator
        if args.bookmark_interval is not None:
            emulator.bookmark_interval = args.bookmark_interval
        recorder = Recorder(emulator, sandbox.namespace)
        recorder.start()
        sandbox.start_controller(process=True)
        pid = controller_pid(sandbox)
        if args.controller_cpu is not None:
            # The controller's core to itself (as far as this machine allows); the emulator,
            # the kubelet simulator and the recorder share the other CPUs.
            controller_cpus, sandbox_cpus = split_cpus(args.controller_cpu)
            pin(pid, controller_cpus)
            pin("self", sandbox_cpus)
        sampler = Sampler(pid)
        sampler.start()
        try:
            names = []
            for index in range(n):
                docs = manifests(index, replicas=args.replicas, pause=args.pause,
                                 services=not args.no_services)
                sandbox.apply(docs)
                names.append(docs[-1]["metadata"]["name"])
            created = time.time()

            def all_healthy_at_first() -> bool:
                latest = recorder.latest
                return all(
                    (p := latest.get(name)) is not None and p.phase == "Healthy"
                    and p.stable is not None and p.observed_generation == p.generation
                    for name in names
                )

            def healthy_count() -> str:
                latest = recorder.latest
                healthy = sum(1 for name in names
                              if (p := latest.get(name)) and p.phase == "Healthy")
                return (f"{healthy}/{n} Healthy, {len(latest)}/{n} seen, "
                        f"{emulator.requests_total} requests")

            wait_until(f"{n} Rollouts Healthy at revision 1", all_healthy_at_first,
                       args.timeout, sandbox, healthy_count)
            wait_quiet(recorder, QUIET_SECONDS, 30.0)
            setup_done = time.time()
            setup_requests = emulator.requests_total
            old_hash = {name: str(recorder.latest[name].stable) for name in names}
            old_generation = {name: recorder.latest[name].generation for name in names}

            # --- the canary -----------------------------------------------------------------
            emulator.reset_counters()
            recorder.rollouts.clear()
            recorder.replica_sets.clear()
            cpu_before = proc_sample(pid)
            waited_before = run_queue_wait(pid)
            self_before = proc_sample("self")
            canary_start = time.time()
            for name in names:
                sandbox.patch_spec(name, {"template": {"spec": {"containers": [
                    {"name": "app", "image": "example/app:2.0",
                     "ports": [{"containerPort": 8080}]}]}}})
            patched_all = time.time()

            def all_promoted() -> bool:
                latest = recorder.latest
                return all(
                    (p := latest.get(name)) is not None and p.phase == "Healthy"
                    and p.stable not in (None, old_hash[name])
                    and p.observed_generation == p.generation
                    for name in names
                )

            wait_until(f"{n} Rollouts Healthy at revision 2", all_promoted, args.timeout,
                       sandbox, healthy_count)
            all_healthy = time.time()
            wait_quiet(recorder, QUIET_SECONDS, 30.0)
            canary_end = recorder.last_event
            cpu_after = proc_sample(pid)
            waited = run_queue_wait(pid) - waited_before
            self_after = proc_sample("self")
            canary_requests = collections.Counter(emulator.requests)
            canary_total = emulator.requests_total

            # --- idle ------------------------------------------------------------------------
            emulator.reset_counters()
            idle_start = time.time()
            time.sleep(args.idle)
            idle_cpu = proc_sample(pid).cpu - cpu_after.cpu
            idle_requests = collections.Counter(emulator.requests)
            idle_seconds = time.time() - idle_start
            final = proc_sample(pid)
            check_alive(sandbox)
        finally:
            recorder.stop()
            sampler.stop()
        lags = measure_lags(recorder, names, old_hash, old_generation, args.pause)

    per = n * steps
    peak_sampled, peak_at = sampler.peak()
    return {
        "rollouts": n,
        "steps": steps,
        "replicas": args.replicas,
        "services": not args.no_services,
        "ready_delay": args.ready_delay,
        "pause": args.pause,
        "tls": not args.plain_http,
        "cpus": os.cpu_count(),
        "controller_cpu": args.controller_cpu,
        "load_average": {
            "setup": sampler.load_range(started, setup_done),
            "canary": sampler.load_range(canary_start, canary_end),
        },
        "python": sys.version.split()[0],
        "wall": {
            "create": created - started,
            "setup": setup_done - started,
            "patch_all": patched_all - canary_start,
            "canary_all_healthy": all_healthy - canary_start,
            "canary_quiet": canary_end - canary_start,
            "total": time.time() - started,
        },
        "setup_requests": setup_requests,
        "lags": {
            "image_to_canary_rs": summary(lags.image_to_rs),
            "image_to_status": summary(lags.image_to_status),
            "pause_end_to_advance": summary(lags.pause_to_advance),
            "pods_ready_to_advance": summary(lags.ready_to_advance),
            "image_to_healthy": summary(lags.image_to_healthy),
        },
        "missing": lags.missing,
        "requests": {
            "total": canary_total,
            "per_rollout": canary_total / n,
            "per_rollout_step": canary_total / per,
            "by_kind": requests_table(canary_requests, per),
        },
        "controller": {
            "pid": pid,
            "cpu_canary": cpu_after.cpu - cpu_before.cpu,
            "cpu_canary_user": cpu_after.user - cpu_before.user,
            "cpu_canary_system": cpu_after.system - cpu_before.system,
            "cpu_ms_per_step": (cpu_after.cpu - cpu_before.cpu) * 1000 / per,
            "cpu_setup": cpu_before.cpu,
            "canary_busiest_5s": sampler.busiest(canary_start, canary_end),
            "canary_waited_for_cpu": waited,
            "cpu_total": final.cpu,
            "peak_rss_mib": final.hwm_kib / 1024,
            "rss_end_mib": final.rss_kib / 1024,
            "rss_setup_end_mib": sampler.rss_at(setup_done),
            "peak_rss_sampled_mib": peak_sampled,
            "peak_rss_at": ("setup" if peak_at <= setup_done else "canary"
                            if peak_at <= canary_end else "after"),
            "peak_rss_after_start_s": peak_at - started,
        },
        "sandbox_process": {
            "cpu_canary": self_after.cpu - self_before.cpu,
            "cpu_ms_per_step": (self_after.cpu - self_before.cpu) * 1000 / per,
            "peak_rss_mib": self_after.hwm_kib / 1024,
        },
        "idle": {
            "seconds": idle_seconds,
            "requests": sum(idle_requests.values()),
            "by_kind": {f"{v} {r}": c for (v, r), c in idle_requests.items()},
            "controller_cpu": idle_cpu,
        },
    }


def report(result: dict[str, Any]) -> str:
    wall, ctl, req = result["wall"], result["controller"], result["requests"]
    lines = [
        f"{result['rollouts']} Rollouts x {result['steps']} steps (replicas {result['replicas']}, "
        f"services {'yes' if result['services'] else 'no'}, ready delay "
        f"{result['ready_delay']}s, pauses {result['pause']}s, "
        f"{'HTTPS' if result['tls'] else 'plain HTTP'}), {result['cpus']} CPUs, "
        f"Python {result['python']}",
        "controller pinned to CPU " + str(result["controller_cpu"]) + ", the sandbox to the "
        "others" if result["controller_cpu"] is not None else "controller and sandbox on any CPU",
        "load average (1 min, min-max): setup {:.2f}-{:.2f}, canary {:.2f}-{:.2f}".format(
            *result["load_average"]["setup"], *result["load_average"]["canary"]),
        f"setup: created in {wall['create']:.1f}s, all Healthy at revision 1 after "
        f"{wall['setup']:.1f}s ({result['setup_requests']} requests)",
        f"canary: image patched on all in {wall['patch_all']:.2f}s; all Healthy at revision 2 "
        f"after {wall['canary_all_healthy']:.1f}s; last write at {wall['canary_quiet']:.1f}s",
        "",
        f"{'lag (ms)':<38}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}",
    ]
    titles = {
        "image_to_canary_rs": "image change -> canary RS created",
        "image_to_status": "image change -> status.currentPodHash",
        "pods_ready_to_advance": "pods ready -> step advanced",
        "pause_end_to_advance": "timed pause end -> step advanced",
    }
    for key, title in titles.items():
        s = result["lags"][key]
        lines.append(f"  {title:<36}{s['n']:>6}{s['p50'] * 1000:>9.0f}{s['p99'] * 1000:>9.0f}"
                     f"{s['max'] * 1000:>9.0f}")
    s = result["lags"]["image_to_healthy"]
    lines.append(f"  {'whole canary (s): image -> Healthy':<36}{s['n']:>6}{s['p50']:>9.2f}"
                 f"{s['p99']:>9.2f}{s['max']:>9.2f}")
    if result["missing"]:
        lines.append(f"  not measured (no promotion seen): {len(result['missing'])}")
    lines += [
        "",
        f"API requests during the canary: {req['total']} = {req['per_rollout']:.1f} per "
        f"Rollout = {req['per_rollout_step']:.2f} per Rollout per step",
    ]
    for row in req["by_kind"]:
        lines.append(f"  {row['verb']:<8}{row['resource']:<32}{row['count']:>8}"
                     f"{row['per_rollout_step']:>8.2f}")
    idle = result["idle"]
    lines += [
        "",
        f"controller CPU: canary {ctl['cpu_canary']:.2f}s (user {ctl['cpu_canary_user']:.2f}, "
        f"sys {ctl['cpu_canary_system']:.2f}) = {ctl['cpu_ms_per_step']:.1f} ms per step "
        f"transition; setup {ctl['cpu_setup']:.2f}s; total {ctl['cpu_total']:.2f}s",
        f"controller memory: peak RSS {ctl['peak_rss_mib']:.0f} MiB (at end "
        f"{ctl['rss_end_mib']:.0f} MiB; at the end of the setup {ctl['rss_setup_end_mib']:.0f}"
        f" MiB; largest sample {ctl['peak_rss_sampled_mib']:.0f} MiB in the "
        f"{ctl['peak_rss_at']}, {ctl['peak_rss_after_start_s']:.0f}s after start)",
        f"controller CPU per step {ctl['cpu_ms_per_step']:.1f} ms beside pause end -> step "
        f"advanced p50 / p99 {result['lags']['pause_end_to_advance']['p50']:.2f} / "
        f"{result['lags']['pause_end_to_advance']['p99']:.2f} s; its busiest 5 s of the "
        f"canary used {ctl['canary_busiest_5s']:.0%} of a CPU; it waited "
        f"{ctl['canary_waited_for_cpu']:.1f} s for a CPU while runnable during the canary",
        f"sandbox process (emulator + kubelet + recorder): canary CPU "
        f"{result['sandbox_process']['cpu_canary']:.2f}s = "
        f"{result['sandbox_process']['cpu_ms_per_step']:.1f} ms per step transition, peak RSS "
        f"{result['sandbox_process']['peak_rss_mib']:.0f} MiB",
        f"idle {idle['seconds']:.1f}s after: {idle['requests']} requests, controller CPU "
        f"{idle['controller_cpu']:.2f}s",
        f"wall: {wall['total']:.1f}s",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rollouts", type=int, default=100, help="how many Rollouts (100)")
    parser.add_argument("--replicas", type=int, default=2, help="replicas per Rollout (2)")
    parser.add_argument("--ready-delay", type=float, default=0.1,
                        help="seconds from pod creation to Ready in the kubelet sim (0.1)")
    parser.add_argument("--pause", type=int, default=2, help="timed pause steps, seconds (2)")
    parser.add_argument("--no-services", action="store_true",
                        help="no canary/stable Services (no selector patches)")
    parser.add_argument("--idle", type=float, default=5.0,
                        help="seconds of idle measured after the canary (5)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds to wait for each phase (900)")
    parser.add_argument("--bookmark-interval", type=float, default=None,
                        help="seconds between the emulator's watch bookmarks (its default: 5); "
                             "see docs/benchmarks.md")
    parser.add_argument("--plain-http", action="store_true",
                        help="serve the emulator over plain HTTP (default: HTTPS with a CA "
                             "made at start, as a cluster's API server)")
    parser.add_argument("--controller-cpu", type=int, default=None, metavar="CPU",
                        help="pin the controller to this CPU and the sandbox (emulator, "
                             "kubelet simulator, recorder) to the others, so that the "
                             "controller has a core to itself (default: no pinning)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    if args.rollouts < 1 or args.replicas < 1 or args.pause < 1:
        parser.error("--rollouts, --replicas and --pause must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not pathlib.Path("/proc/self/stat").exists():
        print("needs /proc (Linux) to read the controller's CPU and memory", file=sys.stderr)
        return 2
    # A plain `kill` still stops the controller subprocess and removes the sandbox's files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = run(args)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
