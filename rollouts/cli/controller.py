"""`rollouts controller`: run the controller against a kubeconfig or in-cluster config."""

from __future__ import annotations

import asyncio
import time

from rollouts import logs
from rollouts.kube.client import KubeClient
from rollouts.kube.namespaces import warn_missing_namespaces
from rollouts.notifications.delivery import ConfigSource
from rollouts.operator import OperatorConfig, run_operator
from rollouts.telemetry import MetricsAddressError, parse_address


def controller_command(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespaces: list[str],
    all_namespaces: bool,
    standalone: bool,
    peering: str | None,
    verbose: bool,
    prometheus_address: str | None = None,
    metrics_address: str | None = None,
    notifications: tuple[str | None, str | None] = (None, None),
    allow_metric_addresses: tuple[str, ...] = (),
    log_format: str = "json",
) -> None:
    """Blocks until SIGINT/SIGTERM. Without -n, serves all namespaces (like Argo Rollouts)."""
    clusterwide = all_namespaces or not namespaces
    if metrics_address is not None:
        try:
            parse_address(metrics_address)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
    config_map, secret = notifications
    if secret and not config_map:
        raise SystemExit("error: --notifications-secret needs --notifications-configmap")
    namespace, _, name = (config_map or "").rpartition("/")
    source = ConfigSource(namespace or _own_namespace(kubeconfig, context), name,
                          secret) if config_map else None
    config = OperatorConfig(
        allow_metric_addresses=allow_metric_addresses,
        namespaces=tuple(namespaces),
        clusterwide=clusterwide,
        standalone=True if standalone else None,
        peering_name=peering or "rollouts",
        prometheus_address=prometheus_address,
        metrics_address=metrics_address,
        notifications=source,
        # The replica started last acts (kopf pauses every replica of equal priority): a
        # Deployment update hands over to the new version as soon as its pod starts.
        peering_priority=time.time_ns() // 1_000_000,
    )
    if not clusterwide:
        _warn_missing_namespaces(kubeconfig, context, namespaces, verbose=verbose,
                                 log_format=log_format)
    try:
        run_operator(
            config,
            kubeconfig=kubeconfig,
            context=context,
            namespaces=tuple(namespaces) or None,
            clusterwide=clusterwide,
            configure_logging=True,
            verbose=verbose,
            log_format=log_format,
        )
    except MetricsAddressError as exc:
        raise SystemExit(f"error: {exc}") from None


def _own_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace the controller runs in: its pod's (service account) or the
    kubeconfig context's."""
    from rollouts.kube.config import load

    return load(kubeconfig, context).default_namespace or "default"


def _warn_missing_namespaces(kubeconfig: str | None, context: str | None,
                             namespaces: list[str], *, verbose: bool, log_format: str) -> None:
    """A warning per named namespace that does not exist (rollouts.kube.namespaces), in the
    controller's log format: logging is configured here as run_operator configures it
    next (configuring again replaces the handler)."""
    from rollouts.kube.config import load

    connection = load(kubeconfig, context)
    logs.configure(log_format, verbose=verbose,
                   secrets=(connection.token or "", connection.password or ""))

    async def check() -> None:
        async with KubeClient(connection, http="httpx", timeout=5.0) as client:
            await warn_missing_namespaces(client, namespaces)

    asyncio.run(check())
