"""Names and formats on the wire, in one place: labels, annotations, phases, pause reasons,
owner references and the time codec.

Everything the controller writes into objects and reads back (and the CLI shows) uses these;
no other module spells them out, so a reader and a writer can never drift apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import AwareDatetime, PlainSerializer, TypeAdapter, ValidationError

GROUP: Final = "rollouts.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

# --- labels and annotations ------------------------------------------------------------------

# On every ReplicaSet, its selector and its pods; Services are pinned with it.
POD_TEMPLATE_HASH_LABEL: Final = "rollouts-pod-template-hash"
# On the ReplicaSets the controller owns.
REVISION_ANNOTATION: Final = "rollouts.dev/revision"
SCALE_DOWN_DEADLINE_ANNOTATION: Final = "rollouts.dev/scale-down-deadline"
# On the AnalysisRuns the controller creates (read back by observe and the CLI).
ROLLOUT_LABEL: Final = "rollouts.dev/rollout"
ANALYSIS_KIND_LABEL: Final = "rollouts.dev/analysis-kind"
ANALYSIS_STEP_LABEL: Final = "rollouts.dev/step-index"
ANALYSIS_ATTEMPT_LABEL: Final = "rollouts.dev/analysis-attempt"
# On an Experiment's ReplicaSets, pods and AnalysisRuns: the Experiment, and the template.
EXPERIMENT_LABEL: Final = "rollouts.dev/experiment"
EXPERIMENT_TEMPLATE_LABEL: Final = "rollouts.dev/experiment-template"

# --- phases and pause reasons ----------------------------------------------------------------

# An AnalysisRun in one of these phases is finished and never changes again.
COMPLETED_RUN_PHASES: Final = frozenset({"Successful", "Failed", "Error", "Inconclusive"})

USER_PAUSE: Final = "PausedByUser"
CANARY_PAUSE: Final = "CanaryPauseStep"
BLUE_GREEN_PAUSE: Final = "BlueGreenPause"
INCONCLUSIVE_PAUSE: Final = "InconclusiveAnalysisRun"

# --- owner references ------------------------------------------------------------------------


def rollout_owner_reference(name: str, uid: str) -> dict[str, Any]:
    """The controller ownerReference every object a Rollout creates carries (garbage
    collection deletes the object with its Rollout)."""
    return owner_reference("Rollout", name, uid)


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    """The controller ownerReference to one of our objects (a Rollout or an Experiment)."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_owner(body: Any, kind: str = "Rollout") -> tuple[str, str] | None:
    """(name, uid) of the Rollout (or other `kind` of ours) that controls this object."""
    metadata = body.get("metadata") if isinstance(body, Mapping) else None
    refs = metadata.get("ownerReferences") if isinstance(metadata, Mapping) else None
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if (
            isinstance(ref, Mapping)
            and ref.get("kind") == kind
            and str(ref.get("apiVersion", "")).split("/")[0] == GROUP
            and ref.get("controller", True)
            and ref.get("name")
        ):
            return str(ref["name"]), str(ref.get("uid") or "")
    return None


# --- time ------------------------------------------------------------------------------------


def format_time(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with a Z; microseconds only when there are any, so that a duration
    measured from a stamp (a pause) never ends before its full length."""
    # isoformat writes the fraction only when there is one; a third of strftime's cost
    # (every timestamp of every status dumped, several times a pass).
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"


def whole_seconds(moment: dt.datetime) -> dt.datetime:
    """`moment` at the precision Kubernetes writes timestamps (condition times, Events)."""
    return moment.astimezone(dt.UTC).replace(microsecond=0)


# A timestamp field of an API model: an aware datetime in Python, RFC 3339 on the wire.
Timestamp = Annotated[AwareDatetime, PlainSerializer(format_time, return_type=str)]

_TIMESTAMP: TypeAdapter[dt.datetime] = TypeAdapter(AwareDatetime)


def parse_time(value: object) -> dt.datetime | None:
    """A timestamp read from an object we do not validate as a whole (annotations,
    creationTimestamp); None when absent or unreadable, never an exception."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else None
    if not isinstance(value, str) or not value:
        return None
    try:
        return _TIMESTAMP.validate_python(value)
    except ValidationError:
        return None
