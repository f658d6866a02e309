"""`rollouts lint`, GitOps part: Services a Rollout names should not declare a selector.

`Service.spec.selector` is an atomic map. A GitOps tool that applies the Service by
server-side apply taking ownership of conflicts (Flux's kustomize-controller) takes the
whole selector and drops the controller's `rollouts-pod-template-hash` key: until the
controller puts it back, the Service selects the pods of every revision. Declared without a
selector, the Service's selector is the controller's alone (the Rollout's selector labels
plus the hash) and nothing fights over it. See docs/gitops.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from rollouts.cli.manifests import Document, Problem
from rollouts.models.wire import POD_TEMPLATE_HASH_LABEL

# Where a Rollout names the Services whose selector the controller writes.
SERVICE_FIELDS = (
    ("canary", "canaryService"),
    ("canary", "stableService"),
    ("blueGreen", "activeService"),
    ("blueGreen", "previewService"),
)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _namespace(body: Mapping[str, Any]) -> str | None:
    namespace = _dict(body.get("metadata")).get("namespace")
    return namespace if isinstance(namespace, str) and namespace else None


def named_services(rollout: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(Service name, the Rollout field naming it) for every Service the strategy names."""
    strategy = _dict(_dict(rollout.get("spec")).get("strategy"))
    for kind, field in SERVICE_FIELDS:
        name = _dict(strategy.get(kind)).get(field)
        if isinstance(name, str) and name:
            yield name, f"spec.strategy.{kind}.{field}"


def selector_message(rollout: str, field: str) -> str:
    return (
        f"declares spec.selector, but Rollout {rollout} ({field}) owns this Service's "
        "selector. The selector is an atomic map: a GitOps tool applying this manifest by "
        "server-side apply (Flux) takes all of it and removes "
        f"{POD_TEMPLATE_HASH_LABEL}, so the Service selects every revision until the "
        "controller puts it back, at every sync. Fix: remove spec.selector from this "
        "manifest; the controller sets it (the Rollout's selector labels plus the "
        "pod-template hash). See docs/gitops.md"
    )


def service_selector_warnings(docs: Sequence[Document]) -> list[Problem]:
    """A warning on every Service, among `docs`, that a Rollout among `docs` names and that
    declares spec.selector (a namespace set on both must match)."""
    named: dict[str, list[tuple[str | None, str, str]]] = {}
    for doc in _of_kind(docs, "Rollout"):
        rollout = str(_dict(doc.body.get("metadata")).get("name") or "")
        for service, field in named_services(doc.body):
            named.setdefault(service, []).append((_namespace(doc.body), rollout, field))
    problems = []
    for doc in _of_kind(docs, "Service"):
        name = _dict(doc.body.get("metadata")).get("name")
        if not _dict(doc.body.get("spec")).get("selector") or not isinstance(name, str):
            continue
        namespace = _namespace(doc.body)
        for rollout_ns, rollout, field in named.get(name, ()):
            if rollout_ns is None or namespace is None or rollout_ns == namespace:
                problems.append(Problem(doc.file, doc.index, "spec.selector",
                                        selector_message(rollout, field), warning=True))
                break
    return problems


def _of_kind(docs: Iterable[Document], kind: str) -> Iterator[Document]:
    return (d for d in docs if d.body.get("kind") == kind)
