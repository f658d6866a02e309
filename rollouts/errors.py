"""One small hierarchy for every error the project raises on purpose."""

from __future__ import annotations


class RolloutsError(Exception):
    """Base of every error this project raises deliberately."""


class InvalidSpecError(RolloutsError):
    """A manifest is well-formed YAML but breaks a rule; `field` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ConditionSyntaxError(RolloutsError):
    """An analysis condition does not parse; `position` is a 0-based offset."""

    def __init__(self, expression: str, position: int, message: str) -> None:
        super().__init__(f"{message} at position {position} in {expression!r}")
        self.expression = expression
        self.position = position
        self.message = message


class KubeError(RolloutsError):
    """The Kubernetes API answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class ConflictError(KubeError):
    """409: a write carried a stale resourceVersion, or the object already exists."""


class NotFoundError(KubeError):
    """404: the object does not exist."""


class ForbiddenError(KubeError):
    """403: RBAC denies the request."""


class OperationError(RolloutsError):
    """A user operation (promote, abort, ...) makes no sense in the Rollout's state."""


class MetricError(RolloutsError):
    """A metric provider could not produce a measurement (network, timeout, bad answer)."""
