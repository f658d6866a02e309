"""`rollouts demo`: a thin wrapper; the scenario lives in `rollouts.sandbox.demo`.

Promote and abort go through `write_operation` of `rollouts.cli.cluster`, the very code of
`rollouts promote` / `rollouts abort`, against the sandbox's kubeconfig. The analysis acts
need the `prometheus` binary (scripts/setup.sh installs it); without it the demo says so and
exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console

from rollouts.cli.cluster import WriteResult, write_operation
from rollouts.cli.kubeopts import CliError, Globals
from rollouts.errors import OperationError
from rollouts.sandbox.cluster import Sandbox
from rollouts.sandbox.demo import OperationResult, run_demo


def cli_operate(sandbox: Sandbox, operation: str, name: str) -> OperationResult:
    """What `rollouts --kubeconfig <sandbox> <operation> <name>` writes."""
    settings = Globals(kubeconfig=str(sandbox.kubeconfig), namespace=sandbox.namespace)

    async def write() -> WriteResult:
        async with settings.client() as client:
            return await write_operation(client, sandbox.namespace, name, operation)

    try:
        result = asyncio.run(write())
    except CliError as exc:
        raise OperationError(exc.message) from exc
    before = result.before.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    return OperationResult(before=before, updates=result.updates)


@contextlib.contextmanager
def serve_dashboard(sandbox: Sandbox) -> Iterator[str]:
    """`rollouts dashboard` of the sandbox (port 3100, else any free port), in a thread."""
    from rollouts.dashboard.background import DashboardThread
    from rollouts.dashboard.server import Settings

    for port in (3100, 0):
        thread = DashboardThread(str(sandbox.kubeconfig), Settings(namespace=None, port=port))
        try:
            thread.start()
        except CliError:
            continue  # port 3100 taken: any free one
        try:
            yield thread.url
        finally:
            thread.stop()
        return


def demo_command(*, keep: bool, fast: bool, dashboard: bool = False) -> None:
    # Colour only on a terminal; rich honours NO_COLOR and TERM=dumb by itself.
    out = Console(highlight=False, emoji=False)
    if dashboard and not keep:
        out.print("--dashboard needs --keep (the dashboard shows the sandbox kept running)",
                  style="red", highlight=False)
        raise typer.Exit(2)
    try:
        code = run_demo(keep=keep, fast=fast, out=out, operate=cli_operate,
                        dashboard=serve_dashboard if dashboard else None)
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)
