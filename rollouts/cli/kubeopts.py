"""kubectl-style connection options, the client they make, and how API errors read.

Every command that talks to a cluster goes through `Globals.client()` and `api_call`, so a
missing object, an RBAC denial or an unreachable server gives one clear line on stderr and
exit code 1 instead of a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rollouts.errors import ForbiddenError, KubeError, NotFoundError, RolloutsError

# httpx and the kubernetes client load only when a command talks to a cluster: every
# command builds `Globals`, and `rollouts version` must stay fast.
if TYPE_CHECKING:
    import httpx

    from rollouts.kube.client import KubeClient
    from rollouts.kube.config import Connection

GROUP = "rollouts.dev"
VERSION = "v1alpha1"


class CliError(RolloutsError):
    """A failure the CLI reports as one line on stderr, exiting with `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class Globals:
    """The global options (`--kubeconfig`, `--context`, `-n`) shared by every command."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    # Tests swap the network for an httpx.MockTransport.
    transport: httpx.AsyncBaseTransport | None = None
    _connection: Connection | None = None

    def connection(self) -> Connection:
        from rollouts.kube.config import load as load_connection

        if self._connection is None:
            from rollouts.kube.config import KubeconfigError

            try:
                self._connection = load_connection(self.kubeconfig, self.context)
            except KubeconfigError as exc:
                raise CliError(str(exc)) from exc
            except Exception as exc:  # in-cluster loading raises many unrelated types
                where = self.kubeconfig or "$KUBECONFIG / ~/.kube/config"
                raise CliError(f"cannot load kubeconfig ({where}): {exc}") from exc
        return self._connection

    def client(self) -> KubeClient:
        from rollouts.kube.client import KubeClient

        # httpx: a few requests per command, a faster start than aiohttp's import.
        return KubeClient(self.connection(), http="httpx", transport=self.transport)

    def unreachable(self, exc: BaseException) -> str:
        """The one line for a request that never reached the server: which server, which
        context, and what to check."""
        connection = self.connection()
        where = f" (context {connection.context})" if connection.context else ""
        reason = str(exc) or type(exc).__name__
        return (f"cannot reach the Kubernetes API server at {connection.host}{where}: "
                f"{reason}; check that the cluster is up, or choose another context with "
                "--context")

    def resolved_namespace(self) -> str:
        """-n, else the kubeconfig context's namespace, else "default"."""
        if self.namespace:
            return self.namespace
        return self.connection().default_namespace or "default"


def _where(namespace: str | None) -> str:
    return f" in namespace {namespace}" if namespace else " cluster-wide"


@contextlib.asynccontextmanager
async def api_call(verb: str, resource: str, namespace: str | None,
                   name: str | None = None) -> AsyncIterator[None]:
    """Turn API failures inside the block into CliError naming what was attempted."""
    import httpx

    try:
        yield
    except NotFoundError as exc:
        what = f"{_kind(resource)} {name}" if name else f"resource {resource}"
        raise CliError(f"{what} not found{_where(namespace)}") from exc
    except ForbiddenError as exc:
        raise CliError(
            f"forbidden: cannot {verb} {resource}{_where(namespace)} "
            f"(RBAC denies it: {exc.message})"
        ) from exc
    except KubeError as exc:
        raise CliError(f"{verb} {resource}{_where(namespace)} failed: {exc}") from exc
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the Kubernetes API: {exc or type(exc).__name__}") from exc


def _kind(resource: str) -> str:
    base = resource.split("/")[0]
    return {"rollouts": "rollout", "analysisruns": "analysisrun",
            "replicasets": "replicaset"}.get(base, base)
