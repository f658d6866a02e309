"""Where the API server is and how to authenticate: read once from a kubeconfig or the pod.

Both the controller's own client (`rollouts.kube.client`) and kopf's login handler are built
from the same `Connection`, so the operator and the executor always talk to the same server
as the same identity.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import kubernetes.client
import kubernetes.config
import yaml

from rollouts.errors import RolloutsError

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


def _token_of(cfg: kubernetes.client.Configuration) -> str | None:
    # kubernetes >= 30 keeps the token under "BearerToken" (older: "authorization"); both run
    # the refresh hook if any.
    value = (cfg.get_api_key_with_prefix("BearerToken")
             or cfg.get_api_key_with_prefix("authorization"))
    if not value:
        return None
    text = str(value)
    return text.split(" ", 1)[1] if text.lower().startswith("bearer ") else text


def _from_configuration(
    cfg: kubernetes.client.Configuration, default_namespace: str | None,
    context: str | None = None,
) -> Connection:
    refresh: Callable[[], str | None] | None = None
    if cfg.refresh_api_key_hook is not None:
        def refresh() -> str | None:
            return _token_of(cfg)
    return Connection(
        host=str(cfg.host).rstrip("/"),
        token=_token_of(cfg),
        username=cfg.username or None,
        password=cfg.password or None,
        ca_path=cfg.ssl_ca_cert or None,
        cert_path=cfg.cert_file or None,
        key_path=cfg.key_file or None,
        verify=bool(cfg.verify_ssl),
        default_namespace=default_namespace,
        context=context,
        refresh=refresh,
    )


def kubeconfig_files(path: str | None = None) -> list[str]:
    """The files a kubeconfig is read from, as kubectl picks them: `path`, else each entry
    of $KUBECONFIG, else ~/.kube/config."""
    if path:
        return [os.path.expanduser(path)]
    listed = os.environ.get("KUBECONFIG", "")
    if listed.strip():
        return [os.path.expanduser(p) for p in listed.split(os.pathsep) if p.strip()]
    return [os.path.expanduser(_DEFAULT_KUBECONFIG)]


def _check_files(path: str | None) -> list[str]:
    """The existing files of the kubeconfig, or KubeconfigError saying what to do."""
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
    return existing


def _context_names(path: str | None) -> tuple[list[str], str | None]:
    contexts, active = kubernetes.config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
        config_file=path
    )
    return [str(c.get("name")) for c in contexts], (active or {}).get("name")


def from_kubeconfig(path: str | None = None, context: str | None = None) -> Connection:
    """Load a kubeconfig (`path`, else $KUBECONFIG, else ~/.kube/config).

    Raises KubeconfigError (one line: what is wrong and what to do) for a missing or
    unreadable file, an unknown context, or a context that names no server.
    """
    files = _check_files(path)
    where = path or os.pathsep.join(files)
    try:
        names, active = _context_names(path)
    except kubernetes.config.ConfigException as exc:
        raise KubeconfigError(f"kubeconfig {where} has no usable contexts ({exc}): "
                              "add one, or pass another --kubeconfig") from exc
    if context is not None and context not in names:
        known = ", ".join(names) or "none"
        raise KubeconfigError(f"context {context!r} not found in kubeconfig {where}; "
                              f"known contexts: {known}")
    chosen = context or active
    cfg = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
    except (kubernetes.config.ConfigException, OSError, ValueError, TypeError,
            AttributeError, KeyError) as exc:
        # The loader reports a broken entry many ways; the reason is in its message.
        raise KubeconfigError(f"kubeconfig {where}, context {chosen!r}, cannot be used: "
                              f"{exc}") from exc
    if not str(cfg.host or "").startswith(("http://", "https://")):
        raise KubeconfigError(f"context {chosen!r} in kubeconfig {where} names no server URL "
                              f"(cluster server: {cfg.host or 'empty'!s}); fix the cluster entry")
    namespace: str | None = None
    try:
        contexts, current = kubernetes.config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=path
        )
        found = next((c for c in contexts if c.get("name") == context), None) or current
        namespace = (found or {}).get("context", {}).get("namespace")
    except Exception:  # the namespace is a convenience; a kubeconfig without one is fine
        namespace = None
    return _from_configuration(cfg, namespace or "default", chosen)


def in_cluster() -> Connection:
    """The pod's service account (token file re-read as it rotates)."""
    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
        client_configuration=cfg
    )
    namespace = "default"
    if os.path.exists(_SERVICE_ACCOUNT_NAMESPACE):
        with open(_SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as fh:
            namespace = fh.read().strip() or "default"
    return _from_configuration(cfg, namespace)


def load(kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """In-cluster when running in a pod and no kubeconfig was named; else the kubeconfig."""
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster()
    return from_kubeconfig(kubeconfig, context)


def check_reachable(connection: Connection, timeout: float = 5.0) -> None:
    """Ask the server for its version; UnreachableError names the server and the context.

    Any HTTP answer (even 401/403) means the server is there: credentials are the
    caller's next concern, and its own error says so.
    """
    import httpx

    try:
        with httpx.Client(verify=connection.tls(), timeout=timeout) as http:
            http.get(f"{connection.host}/version")
    except httpx.HTTPError as exc:
        where = f" (context {connection.context})" if connection.context else ""
        reason = str(exc) or type(exc).__name__
        raise UnreachableError(
            f"cannot reach the Kubernetes API server at {connection.host}{where}: {reason}; "
            "check that the cluster is up, or choose another context with --context"
        ) from exc
