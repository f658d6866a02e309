"""`rollouts controller`: run the controller against a kubeconfig or in-cluster config."""

from __future__ import annotations

from rollouts.operator import OperatorConfig, run_operator


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
) -> None:
    """Blocks until SIGINT/SIGTERM. Without -n, serves all namespaces (like Argo Rollouts)."""
    clusterwide = all_namespaces or not namespaces
    config = OperatorConfig(
        namespaces=tuple(namespaces),
        clusterwide=clusterwide,
        standalone=True if standalone else None,
        peering_name=peering or "rollouts",
        prometheus_address=prometheus_address,
    )
    run_operator(
        config,
        kubeconfig=kubeconfig,
        context=context,
        namespaces=tuple(namespaces) or None,
        clusterwide=clusterwide,
        configure_logging=True,
        verbose=verbose,
    )
