"""`rollouts set image` and `rollouts undo`: changes to a Rollout's spec from the command line.

Unlike promote / abort / retry (status writes, never drift), these change `spec.template`:
the controller then rolls the new template out through the strategy like any other change.
In a GitOps setup the change belongs in Git; made here, it shows as drift and the next sync
reverts it. Each command says so in its help and its output.

The decisions (which template to write) are pure functions; the write is a PUT of the whole
Rollout carrying the resourceVersion it was decided on, so a concurrent change is never
overwritten (a 409 re-reads and decides again).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollouts.cli.kubeopts import GROUP, VERSION, CliError, api_call
from rollouts.errors import ConflictError
from rollouts.kube.client import Body, KubeClient
from rollouts.models.wire import POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, controller_owner

GITOPS_WARNING = ("this changes the Rollout's spec in the cluster only: in a GitOps setup "
                  "(Argo CD, Flux) commit the change to Git instead, or the next sync "
                  "reverts it")
WRITE_ATTEMPTS = 3
_CONTAINER_LISTS = ("initContainers", "containers")

Template = dict[str, Any]
Decide = Callable[[Body, list[Body]], tuple[Template, list[str]]]


def parse_assignments(pairs: Sequence[str]) -> list[tuple[str, str]]:
    """CONTAINER=IMAGE pairs (`*` for every container), checked before anything is read."""
    parsed = []
    for pair in pairs:
        container, sep, image = pair.partition("=")
        if not sep or not container.strip() or not image.strip():
            raise CliError(f"expected CONTAINER=IMAGE, got {pair!r}")
        parsed.append((container.strip(), image.strip()))
    return parsed


def with_images(template: Mapping[str, Any],
                assignments: Sequence[tuple[str, str]]) -> tuple[Template, list[str]]:
    """The pod template with the images set, and one "container: old -> new" line per
    container whose image changed. Unknown container names fail, naming the known ones.

    >>> t = {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}
    >>> with_images(t, [("web", "web:2")])[1]
    ['web: web:1 -> web:2']
    """
    result = copy.deepcopy(dict(template))
    spec = result.setdefault("spec", {})
    containers = [c for key in _CONTAINER_LISTS for c in spec.get(key) or ()]
    names = [str(c.get("name")) for c in containers]
    changes = []
    for name, image in assignments:
        if name != "*" and name not in names:
            raise CliError(f"no container {name!r} in the pod template "
                           f"(containers: {', '.join(names) or 'none'})")
        for container in containers:
            if name in ("*", container.get("name")) and container.get("image") != image:
                changes.append(f"{container.get('name')}: {container.get('image')} -> {image}")
                container["image"] = image
    return result, changes


def revision_of(replica_set: Mapping[str, Any]) -> int | None:
    value = ((replica_set.get("metadata") or {}).get("annotations") or {}).get(
        REVISION_ANNOTATION)
    try:
        return None if value is None else int(str(value))
    except ValueError:
        return None


def undo_template(rollout: Mapping[str, Any], replica_sets: Sequence[Mapping[str, Any]],
                  to_revision: int | None) -> tuple[Template, list[str]]:
    """The pod template of revision `to_revision` (None: the one before the newest), as the
    Rollout had it (the controller's hash label removed), and a line saying which."""
    revisions = sorted(((revision_of(rs), rs) for rs in replica_sets
                        if revision_of(rs) is not None), key=lambda pair: pair[0] or 0)
    known = ", ".join(str(number) for number, _ in revisions) or "none"
    if to_revision is None:
        if len(revisions) < 2:
            raise CliError(f"no earlier revision to go back to (revisions: {known})")
        number, chosen = revisions[-2]
    else:
        found = [pair for pair in revisions if pair[0] == to_revision]
        if not found:
            raise CliError(f"revision {to_revision} not found (revisions: {known})")
        number, chosen = found[0]
    template = copy.deepcopy(dict((chosen.get("spec") or {}).get("template") or {}))
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    if template.get("metadata") is not None:
        template["metadata"]["labels"] = labels
    if template == (rollout.get("spec") or {}).get("template"):
        raise CliError(f"revision {number} is already the Rollout's template")
    return template, [f"pod template of revision {number} "
                      f"(ReplicaSet {(chosen.get('metadata') or {}).get('name')})"]


@dataclass(frozen=True)
class SpecChange:
    lines: list[str]
    generation: int | None


async def change_template(client: KubeClient, namespace: str, name: str, decide: Decide, *,
                          needs_replica_sets: bool = False) -> SpecChange:
    """Read, decide the new pod template, write it guarded by resourceVersion."""
    for _ in range(WRITE_ATTEMPTS):
        async with api_call("get", "rollouts", namespace, name):
            body = await client.get(GROUP, VERSION, "rollouts", namespace, name)
        owned: list[Body] = []
        if needs_replica_sets:
            async with api_call("list", "replicasets", namespace):
                items, _ = await client.list("apps", "v1", "replicasets", namespace)
            uid = (body.get("metadata") or {}).get("uid")
            owned = [rs for rs in items if (controller_owner(rs) or ("", ""))[1] == uid]
        ref = (body.get("spec") or {}).get("workloadRef")
        if isinstance(ref, dict):  # the template is the Deployment's: change it there
            raise CliError(f"rollout {name} takes its pod template from Deployment "
                           f"{ref.get('name')} (spec.workloadRef): change the Deployment")
        template, lines = decide(body, owned)
        if not lines:
            return SpecChange([], None)
        updated = copy.deepcopy(body)
        updated.setdefault("spec", {})["template"] = template
        updated.pop("status", None)
        async with api_call("update", "rollouts", namespace, name):
            try:
                after = await client.replace(GROUP, VERSION, "rollouts", namespace, name,
                                             updated)
            except ConflictError:
                continue
        return SpecChange(lines, (after.get("metadata") or {}).get("generation"))
    raise CliError(f"rollout {name} kept changing while it was being written "
                   f"({WRITE_ATTEMPTS} conflicts in a row); nothing was written, try again")
