"""The traffic of the sandbox's simulated application, as pure functions of the clock.

Each ready pod serves ``rps_per_pod`` requests per second (10 by default) for **each Service
whose selector matches the pod**; `rollouts.sandbox.app` follows the ReplicaSets and Services
in the API emulator and serves the result to Prometheus.
How the requests go depends on the pod image (see `profile_for_image`):

============================== ========== ======================= ==================
image tag contains             5xx share  latency                 meaning
============================== ========== ======================= ==================
``bad``                        30 %       slow (p99 ~ 2.35 s)     a broken release
``slow``                       0.5 %      slow                    a latency regression
``regress``                    5 %        fast                    10x the errors of good
``idle``                       --         --                      no traffic at all
anything else                  0.5 %      fast (p99 ~ 75 ms)      a good release
============================== ========== ======================= ==================

Shares are exact: counts are integers derived from the cumulative request count with
fractions, so over any long enough window the ratio is what the table says. Besides 5xx
(code ``500``) 2 % of the requests get a ``404`` (not an error for the catalog templates).

Series and labels
-----------------
``http_requests_total{service, namespace, code, rollout, rollouts_pod_template_hash,
replicaset}`` (counter) and ``http_request_duration_seconds_bucket/_sum/_count{service,
namespace, le, ...the same}`` (histogram, seconds), plus ``sandbox_app_ready_pods{namespace,
rollout, rollouts_pod_template_hash, replicaset}`` (gauge, always present for a served
ReplicaSet).

``service`` is the name of the Kubernetes **Service the requests were addressed to**, as
Istio's ``destination_service_name`` or an ingress would report it: a pod behind
``web``, ``web-stable`` and ``web-canary`` reports three streams. Because the controller pins
the ``canaryService`` (blue-green: ``previewService``, then ``activeService``) selector to the
revision being judged, ``service=<canaryService>`` selects exactly the canary's traffic, which
is what the catalog templates (``analysis/http-success-rate.yaml``, ``http-latency-p99``)
expect in their ``service`` arg::

    args:
      - {name: service, value: web-canary}
      - {name: namespace, value: default}

Pods behind no Service get no traffic and export no request series. As in a real cluster,
the canary Service served the stable pods until the rollout started, and a ``rate()`` window
reaching back before the switch mixes both: give a step analysis an ``initialDelay`` of at
least the window. ``rollouts_pod_template_hash`` selects a revision regardless of Services
(e.g. with ``valueFrom: {podTemplateHashValue: Latest}`` in a template of your own).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

__all__ = [
    "BAD",
    "GOOD",
    "IDLE",
    "LATENCY_BUCKETS",
    "REGRESS",
    "SLOW",
    "Profile",
    "ReplicaSetTraffic",
    "profile_for_image",
    "profile_for_pod_spec",
    "render_exposition",
]

# Upper bounds (seconds) of the histogram buckets, as the Prometheus client libraries' default.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


@dataclass(frozen=True)
class Profile:
    """How a revision answers: request rate, error and not-found shares, latency.

    `latency` maps bucket upper bounds to the share of requests at or below them
    (cumulative, non-decreasing; bounds not listed are interpolated as "no more requests");
    `mean_latency` feeds `_sum`.
    """

    name: str
    error_ratio: Fraction
    not_found_ratio: Fraction = Fraction(1, 50)
    latency: Mapping[float, Fraction] = field(default_factory=dict)
    mean_latency: float = 0.02
    traffic: bool = True

    def cumulative(self, bound: float) -> Fraction:
        """Share of requests that took at most `bound` seconds."""
        share = Fraction(0)
        for le, value in sorted(self.latency.items()):
            if le <= bound:
                share = value
        return share


_FAST = {0.01: Fraction(40, 100), 0.025: Fraction(90, 100), 0.05: Fraction(98, 100),
         0.1: Fraction(1)}
_SLOW = {0.1: Fraction(10, 100), 0.25: Fraction(40, 100), 0.5: Fraction(70, 100),
         1.0: Fraction(90, 100), 2.5: Fraction(1)}

GOOD = Profile("good", Fraction(1, 200), latency=_FAST, mean_latency=0.02)
BAD = Profile("bad", Fraction(3, 10), latency=_SLOW, mean_latency=0.6)
SLOW = Profile("slow", Fraction(1, 200), latency=_SLOW, mean_latency=0.6)
# Ten times the errors of a good release, yet 95% of requests still succeed: what a
# success-rate threshold of 95% lets through and a comparison with a baseline does not.
REGRESS = Profile("regress", Fraction(1, 20), latency=_FAST, mean_latency=0.02)
IDLE = Profile("idle", Fraction(0), latency=_FAST, traffic=False)


def _tag(image: str) -> str:
    """The tag (or digest) of an image reference; "latest" when there is none."""
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return name.split("@", 1)[1]
    return name.split(":", 1)[1] if ":" in name else "latest"


def profile_for_image(image: str) -> Profile:
    """The profile an image's tag asks for: "bad", "slow", "regress", "idle" or good."""
    tag = _tag(image).lower()
    for marker, profile in (("bad", BAD), ("slow", SLOW), ("regress", REGRESS),
                            ("idle", IDLE)):
        if marker in tag:
            return profile
    return GOOD


def profile_for_pod_spec(spec: Mapping[str, Any]) -> Profile:
    """The worst profile among a pod's containers (one bad container breaks the pod)."""
    ranked = (BAD, SLOW, REGRESS, IDLE)
    found = {profile_for_image(str(c.get("image", ""))).name
             for c in spec.get("containers") or ()}
    for profile in ranked:
        if profile.name in found:
            return profile
    return GOOD


# ---------------------------------------------------------------------------------------------
# The traffic of one ReplicaSet (pure: the clock is passed in)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _le(bound: float) -> str:
    return repr(bound) if not float(bound).is_integer() else f"{bound:.1f}"


@dataclass
class _Stream:
    """Requests addressed to one Service: exact counts derived from the running total."""

    requests: int = 0
    carry: float = 0.0  # fractional request not yet counted


class ReplicaSetTraffic:
    """Synthetic request counters of one ReplicaSet's pods.

    `advance(now)` moves the counters by ``rps_per_pod * ready * elapsed`` for each Service
    currently matching the pods; `set_ready` / `set_services` advance first, so a change
    applies from the moment it was seen. `render(now)` advances and returns the exposition.
    """

    def __init__(self, *, namespace: str, replicaset: str, rollout: str, pod_hash: str,
                 pod_labels: Mapping[str, str], profile: Profile, now: float,
                 rps_per_pod: float = 10.0) -> None:
        self.namespace = namespace
        self.replicaset = replicaset
        self.rollout = rollout
        self.pod_hash = pod_hash
        self.pod_labels = dict(pod_labels)
        self.profile = profile
        self.rps_per_pod = rps_per_pod
        self.ready = 0
        self.services: tuple[str, ...] = ()
        # Requests per second addressed to a Service behind a weighted route (see
        # rollouts.sandbox.routes); other Services get `rps_per_pod` per ready pod.
        self.rates: dict[str, float] = {}
        self.streams: dict[str, _Stream] = {}
        self._last = now

    def advance(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._last = max(self._last, now)
        if not self.profile.traffic or self.ready <= 0:
            for service in self.services:
                self.streams.setdefault(service, _Stream())
            return
        for service in self.services:
            stream = self.streams.setdefault(service, _Stream())
            rate = self.rates.get(service, self.rps_per_pod * self.ready)
            total = stream.carry + rate * elapsed
            whole = math.floor(total)
            stream.requests += whole
            stream.carry = total - whole

    def set_ready(self, ready: int, now: float) -> None:
        self.advance(now)
        self.ready = max(0, ready)

    def set_services(self, services: Iterable[str], now: float) -> None:
        self.advance(now)
        self.services = tuple(sorted(set(services)))

    def set_rates(self, rates: Mapping[str, float], now: float) -> None:
        if rates != self.rates:
            self.advance(now)
            self.rates = dict(rates)

    def counts(self, service: str) -> dict[str, int]:
        """Requests to `service` by status code (200, 404, 500)."""
        stream = self.streams.get(service) or _Stream()
        total = stream.requests
        errors = math.floor(total * self.profile.error_ratio)
        not_found = math.floor(total * self.profile.not_found_ratio)
        return {"200": total - errors - not_found, "404": not_found, "500": errors}

    def buckets(self, service: str) -> list[tuple[str, int]]:
        stream = self.streams.get(service) or _Stream()
        total = stream.requests
        out = [(_le(b), math.floor(total * self.profile.cumulative(b))) for b in LATENCY_BUCKETS]
        out.append(("+Inf", total))
        return out

    def _common(self) -> list[tuple[str, str]]:
        return [("rollout", self.rollout), ("rollouts_pod_template_hash", self.pod_hash),
                ("replicaset", self.replicaset)]

    def samples(self) -> dict[str, list[tuple[str, float]]]:
        """Metric family -> [(labels text, value)] for what is exported now."""
        families: dict[str, list[tuple[str, float]]] = {
            "sandbox_app_ready_pods": [
                (_labels([("namespace", self.namespace), *self._common()]), self.ready)],
            "http_requests_total": [],
            "http_request_duration_seconds": [],
        }
        for service in self.services:
            base = [("service", service), ("namespace", self.namespace)]
            for code, value in self.counts(service).items():
                families["http_requests_total"].append(
                    (_labels([*base, ("code", code), *self._common()]), value))
            histogram = families["http_request_duration_seconds"]
            for le, value in self.buckets(service):
                histogram.append(("_bucket" + _labels([*base, ("le", le), *self._common()]),
                                  value))
            total = (self.streams.get(service) or _Stream()).requests
            histogram.append(("_sum" + _labels([*base, *self._common()]),
                              round(total * self.profile.mean_latency, 6)))
            histogram.append(("_count" + _labels([*base, *self._common()]), total))
        return families

    def render(self, now: float) -> str:
        self.advance(now)
        return render_exposition([self])


_FAMILIES = (
    ("http_requests_total", "counter", "Requests served, by the Service they were sent to."),
    ("http_request_duration_seconds", "histogram", "Request latency in seconds."),
    ("sandbox_app_ready_pods", "gauge", "Ready pods of the simulated ReplicaSet."),
)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_exposition(apps: Iterable[ReplicaSetTraffic]) -> str:
    """The Prometheus text format (0.0.4) for some ReplicaSets (families kept together)."""
    collected = [app.samples() for app in apps]
    lines: list[str] = []
    for family, kind, help_text in _FAMILIES:
        rows = [row for samples in collected for row in samples.get(family, ())]
        if not rows:
            continue
        lines.append(f"# HELP {family} {help_text}")
        lines.append(f"# TYPE {family} {kind}")
        # Histogram rows carry their suffix (_bucket, _sum, _count) before the labels.
        lines.extend(f"{family}{suffixed} {_number(value)}" for suffixed, value in rows)
    return "\n".join(lines) + ("\n" if lines else "")
