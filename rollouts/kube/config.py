"""Where the API server is and how to authenticate: read once from a kubeconfig or the pod.

Both the controller's own client (`rollouts.kube.client`) and kopf's login handler are built
from the same `Connection`, so the operator and the executor always talk to the same server
as the same identity.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from rollouts.errors import RolloutsError
from rollouts.kube import kubeconfig

_SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
_DEFAULT_KUBECONFIG = "~/.kube/config"
NO_KUBECONFIG = ("no kubeconfig found: set KUBECONFIG or pass --kubeconfig; "
                 "try 'rollouts demo --keep'")


class KubeconfigError(RolloutsError):
    """The kubeconfig cannot be used; the message is one line saying what to do."""


class UnreachableError(RolloutsError):
    """The API server named by the kubeconfig did not answer."""


@dataclass(frozen=True)
class Connection:
    """Server address and credentials (paths, not PEM text: the loaders write temp files)."""

    host: str
    token: str | None = None
    username: str | None = None
    password: str | None = None
    ca_path: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    verify: bool = True
    default_namespace: str | None = None
    context: str | None = None  # the kubeconfig context it came from (for messages)
    # Re-reads a rotating token (projected service-account tokens, exec plugins); may be None.
    refresh: Callable[[], str | None] | None = field(default=None, compare=False, repr=False)

    def tls(self) -> ssl.SSLContext | bool:
        """What httpx verifies the server with (and presents a client certificate from);
        False for a plain-http server."""
        if not self.host.startswith("https"):
            return False
        context = ssl.create_default_context(cafile=self.ca_path)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_path and self.key_path:
            context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def bearer(self) -> str | None:
        """The current bearer token, refreshed when the source supports it."""
        if self.refresh is not None:
            fresh = self.refresh()
            if fresh:
                return fresh
        return self.token


def kubeconfig_files(path: str | None = None) -> list[str]:
    """The files a kubeconfig is read from, as kubectl picks them: `path`, else each entry
    of $KUBECONFIG, else ~/.kube/config."""
    if path:
        return [os.path.expanduser(path)]
    listed = os.environ.get("KUBECONFIG", "")
    if listed.strip():
        return [os.path.expanduser(p) for p in listed.split(os.pathsep) if p.strip()]
    return [os.path.expanduser(_DEFAULT_KUBECONFIG)]


def _check_files(path: str | None) -> list[tuple[str, Mapping[str, Any] | None]]:
    """The existing files of the kubeconfig with their contents, or KubeconfigError saying
    what to do."""
    files = kubeconfig_files(path)
    existing = [f for f in files if os.path.isfile(f)]
    if path and not existing:
        raise KubeconfigError(f"kubeconfig {path} not found: check the path given to "
                              "--kubeconfig; try 'rollouts demo --keep' for a local sandbox")
    if not existing:
        if os.environ.get("KUBECONFIG", "").strip():
            raise KubeconfigError(f"no kubeconfig found at $KUBECONFIG "
                                  f"({os.environ['KUBECONFIG']}): fix KUBECONFIG or pass "
                                  "--kubeconfig; try 'rollouts demo --keep'")
        raise KubeconfigError(NO_KUBECONFIG)
    documents: list[tuple[str, Mapping[str, Any] | None]] = []
    for name in existing:
        try:
            with open(name, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
                reason = f"{exc.problem or exc.context} at line {exc.problem_mark.line + 1}"
            raise KubeconfigError(f"kubeconfig {name} cannot be read: {reason}") from exc
        if data is not None and not isinstance(data, dict):
            raise KubeconfigError(f"kubeconfig {name} is not a kubeconfig (a YAML mapping "
                                  "with clusters, users and contexts)")
        documents.append((name, data))
    return documents


def from_kubeconfig(path: str | None = None, context: str | None = None) -> Connection:
    """Load a kubeconfig (`path`, else $KUBECONFIG, else ~/.kube/config).

    Raises KubeconfigError (one line: what is wrong and what to do) for a missing or
    unreadable file, an unknown context, or a context that names no server.
    """
    documents = _check_files(path)
    where = path or os.pathsep.join(name for name, _ in documents)
    merged = kubeconfig.merge(documents)
    if not merged.contexts:
        raise KubeconfigError(f"kubeconfig {where} has no usable contexts (it lists none): "
                              "add one, or pass another --kubeconfig")
    if context is not None and context not in merged.contexts:
        known = ", ".join(merged.contexts) or "none"
        raise KubeconfigError(f"context {context!r} not found in kubeconfig {where}; "
                              f"known contexts: {known}")
    chosen = context or merged.current
    if chosen is None or chosen not in merged.contexts:
        known = ", ".join(merged.contexts)
        what = ("sets no current-context" if chosen is None
                else f"has current-context {chosen!r}, which is not one of its contexts")
        raise KubeconfigError(f"kubeconfig {where} {what}: pass --context or set "
                              f"current-context; known contexts: {known}")
    body = merged.contexts[chosen].body
    cluster = merged.clusters.get(str(body.get("cluster")))
    if cluster is None:
        raise KubeconfigError(f"kubeconfig {where}, context {chosen!r}, cannot be used: "
                              f"cluster {body.get('cluster')!r} not found")
    server = str(cluster.body.get("server") or "")
    if not server.startswith(("http://", "https://")):
        raise KubeconfigError(f"context {chosen!r} in kubeconfig {where} names no server URL "
                              f"(cluster server: {server or 'empty'}); fix the cluster entry")
    user = merged.users.get(str(body.get("user")), kubeconfig.Entry({}, ""))
    try:
        host, ca_path, verify = kubeconfig.cluster_tls(cluster)
        credentials = kubeconfig.user_credentials(user)
    except kubeconfig.KubeconfigProblem as exc:
        raise KubeconfigError(f"kubeconfig {where}, context {chosen!r}, cannot be used: "
                              f"{exc}") from exc
    connection = Connection(
        host=host, token=credentials.token, username=credentials.username,
        password=credentials.password, ca_path=ca_path, cert_path=credentials.cert_path,
        key_path=credentials.key_path, verify=verify,
        default_namespace=str(body.get("namespace") or "default"), context=chosen,
        refresh=credentials.refresh,
    )
    _check_tls(connection, f"kubeconfig {where}, context {chosen!r},")
    return connection


def _check_tls(connection: Connection, where: str) -> None:
    """Load the certificates now, so that a bad one is a KubeconfigError naming the
    kubeconfig field to fix rather than an ssl traceback at the first request."""
    if not connection.host.startswith("https"):
        return
    try:
        ssl.create_default_context(cafile=connection.ca_path)
    except (ssl.SSLError, OSError) as exc:
        raise KubeconfigError(f"{where} cannot be used: its certificate authority does not "
                              f"load ({exc}); fix certificate-authority or "
                              "certificate-authority-data") from exc
    if connection.cert_path and connection.key_path:
        try:
            ssl.create_default_context().load_cert_chain(connection.cert_path,
                                                         connection.key_path)
        except (ssl.SSLError, OSError) as exc:
            raise KubeconfigError(f"{where} cannot be used: its client certificate and key "
                                  f"do not load ({exc}); fix client-certificate(-data) and "
                                  "client-key(-data)") from exc


def in_cluster() -> Connection:
    """The pod's service account (token file re-read as it rotates)."""
    try:
        host, ca_path, read_token = kubeconfig.in_cluster_settings()
    except kubeconfig.KubeconfigProblem as exc:
        raise KubeconfigError(f"{exc}; pass --kubeconfig") from exc
    namespace = "default"
    if os.path.exists(_SERVICE_ACCOUNT_NAMESPACE):
        with open(_SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as fh:
            namespace = fh.read().strip() or "default"
    connection = Connection(host=host, token=read_token(), ca_path=ca_path,
                            default_namespace=namespace, refresh=read_token)
    _check_tls(connection, "the pod's service account")
    return connection


def load(kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """In-cluster when running in a pod and no kubeconfig was named; else the kubeconfig."""
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster()
    return from_kubeconfig(kubeconfig, context)


def check_reachable(connection: Connection, timeout: float = 5.0) -> None:
    """Ask the server for its version, then for its API list with the credentials.

    UnreachableError names the server and the context when nothing answers; KubeconfigError
    when the server rejects the credentials (401): kopf would otherwise re-authenticate in a
    loop without saying why. Any other HTTP answer (even 403) means the credentials are
    accepted: what they may do is the caller's next concern, and its own error says so.
    """
    import httpx

    where = f" (context {connection.context})" if connection.context else ""
    auth: httpx.Auth | None = None
    if connection.username and connection.password and not connection.token:
        auth = httpx.BasicAuth(connection.username, connection.password)
    token = connection.bearer()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(verify=connection.tls(), timeout=timeout, auth=auth,
                          headers=headers) as http:
            http.get(f"{connection.host}/version")
            answer = http.get(f"{connection.host}/api")
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise UnreachableError(
            f"cannot reach the Kubernetes API server at {connection.host}{where}: {reason}; "
            "check that the cluster is up, or choose another context with --context"
        ) from exc
    if answer.status_code == 401:
        whose = "the kubeconfig's" if connection.context else "the service account's"
        raise KubeconfigError(
            f"the Kubernetes API server at {connection.host}{where} rejects {whose} "
            "credentials (401 Unauthorized): renew the token or client certificate (e.g. log "
            "in again), or choose another context with --context")
