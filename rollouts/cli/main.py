"""The `rollouts` command (also installed as `kubectl-rollouts`).

Read commands (`get`, `list`, `status`) print for humans or, with `-o json|yaml`, for
machines. Operations (`promote`, `abort`, `retry`, `pause`, `resume`) write the Rollout's
status only. `lint` and `convert` work on files, offline. Exit codes: 0 success, 1 failure
(not found, forbidden, refused operation, failed rollout, lint errors), 2 timeout or a
rollout still in progress (`status`), and usage errors; 3 an internal error of `lint` or
`convert` (a bug, as opposed to findings in the input).

Each group of commands is a module (`read_commands`, `write_commands`, `dashboard_command`,
`offline_commands`); their commands are registered here, in the order `rollouts --help` lists
them. The Typer application and what the commands share are in `rollouts.cli.app`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from rollouts.cli import dashboard_command, offline_commands, read_commands, write_commands
from rollouts.cli.app import (
    ContextOpt,
    KubeconfigOpt,
    LogFormat,
    app,
    fail,
)

# The commands of each module, in the order `rollouts --help` lists them.
app.registered_commands.extend(
    command
    for group in (read_commands.commands, write_commands.commands, dashboard_command.commands,
                  offline_commands.commands)
    for command in group.registered_commands)
app.add_typer(write_commands.set_app, name="set")

# --- commands written elsewhere (imported when run, so the CLI works without them) -----------


@app.command()
def controller(
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", metavar="NAMESPACE",
                     help="Serve this namespace (repeatable); one that does not exist "
                     "yet is warned about and watched."),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Serve every namespace.")
    ] = False,
    standalone: Annotated[
        bool, typer.Option("--standalone", help="No peering: assume the only replica.")
    ] = False,
    peering: Annotated[
        str | None,
        typer.Option("--peering", metavar="NAME", help="Peering object name (leader election)."),
    ] = None,
    prometheus_address: Annotated[
        str | None,
        typer.Option("--prometheus-address", metavar="URL",
                     help="Prometheus for metrics whose provider names no address."),
    ] = None,
    metrics_address: Annotated[
        str | None,
        typer.Option("--metrics-address",
                     help="Serve /metrics, /healthz and /readyz on HOST:PORT (or :PORT)."),
    ] = None,
    notifications_config: Annotated[
        str | None,
        typer.Option("--notifications-configmap", metavar="[NAMESPACE/]NAME",
                     help="ConfigMap defining notification services (default namespace: "
                     "the kubeconfig context's, in a pod its own). Without it notifications "
                     "are off."),
    ] = None,
    notifications_secret: Annotated[
        str | None,
        typer.Option("--notifications-secret", metavar="NAME",
                     help="Secret holding the webhook URLs and tokens the ConfigMap "
                     "refers to as $key (same namespace as the ConfigMap)."),
    ] = None,
    allow_metric_address: Annotated[
        list[str] | None,
        typer.Option("--allow-metric-address", metavar="CIDR",
                     help="Let metric providers reach this link-local or cloud-metadata "
                          "network, refused by default (repeatable)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option("--log-format", envvar="ROLLOUTS_LOG_FORMAT",
                     help="Logs as one JSON object a line, or as text for people."),
    ] = LogFormat.json,
) -> None:
    """Run the controller."""
    from rollouts.controller.lean_imports import import_without

    import_without("httpx")  # before anything imports it with its command-line extras
    try:
        from rollouts.cli.controller import controller_command
    except ModuleNotFoundError as exc:
        if exc.name != "rollouts.cli.controller":
            raise
        raise fail("the controller is not part of this build") from None
    from rollouts.analysis.providers.egress import parse_networks
    from rollouts.kube.config import KubeconfigError, UnreachableError, check_reachable, load
    from rollouts.kube.namespaces import namespace_name_problem

    for name in namespace or []:  # a name no namespace can have is a usage error
        problem = namespace_name_problem(name)
        if problem is not None:
            raise fail(problem, code=2)
    try:
        parse_networks(allow_metric_address or [])
    except ValueError as exc:
        raise fail(str(exc)) from None
    try:  # one line for what a user gets wrong first, before kopf starts
        check_reachable(load(kubeconfig, context))
    except (KubeconfigError, UnreachableError) as exc:
        raise fail(str(exc)) from None

    controller_command(
        kubeconfig=kubeconfig,
        context=context,
        namespaces=list(namespace or []),
        all_namespaces=all_namespaces,
        standalone=standalone,
        peering=peering,
        prometheus_address=prometheus_address,
        metrics_address=metrics_address,
        notifications=(notifications_config, notifications_secret),
        allow_metric_addresses=tuple(allow_metric_address or ()),
        verbose=verbose,
        log_format=log_format.value,
    )


@app.command()
def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Keep the sandbox running after.")] = False,
    fast: Annotated[bool, typer.Option("--fast", help="Shorter pauses.")] = False,
    dashboard: Annotated[
        bool, typer.Option("--dashboard", help="With --keep: serve the web dashboard of the "
                           "sandbox too.")
    ] = False,
) -> None:
    """A local playground: API emulator, controller and a canary to watch."""
    try:
        from rollouts.cli.demo import demo_command
    except ModuleNotFoundError as exc:
        if exc.name != "rollouts.cli.demo":
            raise
        raise fail("the demo is not part of this build") from None

    demo_command(keep=keep, fast=fast, dashboard=dashboard)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
