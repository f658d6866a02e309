"""Where the API server is and how to authenticate: read once from a kubeconfig or the pod.

Both the controller's own client (`rollouts.kube.client`) and kopf's login handler are built
from the same `Connection`, so the operator and the executor always talk to the same server
as the same identity.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import kubernetes.client
import kubernetes.config

_SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


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
    # Re-reads a rotating token (projected service-account tokens, exec plugins); may be None.
    refresh: Callable[[], str | None] | None = field(default=None, compare=False, repr=False)

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
    cfg: kubernetes.client.Configuration, default_namespace: str | None
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
        refresh=refresh,
    )


def from_kubeconfig(path: str | None = None, context: str | None = None) -> Connection:
    """Load a kubeconfig (`path`, else $KUBECONFIG, else ~/.kube/config)."""
    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=path, context=context, client_configuration=cfg, persist_config=False
    )
    namespace: str | None = None
    try:
        contexts, active = kubernetes.config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=path
        )
        chosen = next((c for c in contexts if c.get("name") == context), None) or active
        namespace = (chosen or {}).get("context", {}).get("namespace")
    except Exception:  # the namespace is a convenience; a kubeconfig without one is fine
        namespace = None
    return _from_configuration(cfg, namespace or "default")


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
