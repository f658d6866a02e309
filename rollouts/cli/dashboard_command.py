"""`rollouts dashboard`: the web dashboard (rollouts.dashboard) served for a namespace or all."""

from __future__ import annotations

from typing import Annotated

import typer

from rollouts.cli.app import (
    AllNamespacesOpt,
    ContextOpt,
    KubeconfigOpt,
    NamespaceOpt,
    command_globals,
    explained,
    fail,
    stderr_console,
)
from rollouts.cli.kubeopts import CliError

# Registered on `app` by rollouts.cli.main, in the order of `rollouts --help`.
commands = typer.Typer()


@commands.command()
def dashboard(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 3100,
    address: Annotated[
        str, typer.Option("--address", metavar="ADDRESS",
                          help="Address to listen on; anything but loopback requires the "
                          "printed token.")
    ] = "127.0.0.1",
    all_namespaces: AllNamespacesOpt = False,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Serve a live web dashboard: Rollouts, steps, analysis charts, and the operations."""
    from rollouts.dashboard.server import Settings, run_dashboard

    g = command_globals(ctx, namespace, kubeconfig, context)
    try:
        scope = None if all_namespaces else g.resolved_namespace()
    except CliError as exc:
        raise fail(exc.message, exc.code) from None
    settings = Settings(namespace=scope, address=address, port=port)
    err = stderr_console()

    def announce(url: str) -> None:
        scope = (settings.namespace and f"namespace {settings.namespace}") or "all namespaces"
        err.print(f"Dashboard of {scope} on {url}", markup=False, soft_wrap=True)
        if settings.require_token:
            err.print("Not on loopback: the page needs the token in this URL.",
                      markup=False, soft_wrap=True)
        err.print("Press Ctrl-C to stop.", markup=False)

    try:
        run_dashboard(g.client(), settings, announce)
    except CliError as exc:
        raise fail(explained(exc, g), exc.code) from None

