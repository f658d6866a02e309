"""The commands that write to the cluster: the status operations (`promote`, `abort`, `retry`,
`pause`, `resume`) and the spec changes (`set image`, `undo`, `restart`), which warn that in
GitOps they belong in Git."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rollouts.cli.app import (
    ContextOpt,
    KubeconfigOpt,
    NameArg,
    NamespaceOpt,
    command_globals,
    fail,
    run_command,
    stderr_console,
    stdout_console,
)
from rollouts.cli.helpfmt import RolloutsGroup

# Registered on `app` by rollouts.cli.main, in the order of `rollouts --help`.
commands = typer.Typer()


def _operate(ctx: typer.Context, operation: str, name: str, namespace: str | None,
             kubeconfig: str | None, context: str | None, *, full: bool = False) -> None:
    from rollouts.cli import changes
    from rollouts.cli.cluster import write_operation

    g = command_globals(ctx, namespace, kubeconfig, context)

    async def run() -> None:
        async with g.client() as client:
            ns = g.resolved_namespace()
            result = await write_operation(client, ns, name, operation, full=full)
        console = stdout_console()
        console.print(changes.operation_done(name, ns, operation, full=full), markup=False,
                      soft_wrap=True)
        for line in changes.operation_changes(result.before, result.updates):
            console.print(f"  {line}", markup=False, soft_wrap=True)

    run_command(run, g)


@commands.command()
def promote(
    ctx: typer.Context,
    name: NameArg,
    full: Annotated[
        bool, typer.Option("--full", help="Skip all remaining steps, pauses and analysis.")
    ] = False,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Canary: skip the current step. Blue-green: switch to the preview."""
    _operate(ctx, "promote", name, namespace, kubeconfig, context, full=full)


def _register_operation(operation: str, summary: str) -> None:
    """`rollouts OPERATION NAME`: an operation with no options of its own."""

    def command(
        ctx: typer.Context,
        name: NameArg,
        namespace: NamespaceOpt = None,
        kubeconfig: KubeconfigOpt = None,
        context: ContextOpt = None,
    ) -> None:
        _operate(ctx, operation, name, namespace, kubeconfig, context)

    command.__doc__ = summary
    commands.command(operation)(command)


_register_operation("abort", "Send all traffic back to the stable revision and scale the new one "
                    "down.")
_register_operation("retry", "Start an aborted Rollout over from its first step.")
_register_operation("pause", "Hold an update where it is until `resume`.")
_register_operation("resume", "Lift a pause set with `pause`.")


# --- spec changes (rollouts/cli/release.py): each warns that in GitOps they belong in Git ---

set_app = typer.Typer(help="Change a Rollout's spec (GitOps: change it in Git instead).",
                      cls=RolloutsGroup, no_args_is_help=True)
_GITOPS_NOTE = ("\n\nWarning: this edits the spec in the cluster. In a GitOps setup (Argo CD, "
                "Flux) commit the change to Git instead, or the next sync reverts it.")


@set_app.command("image", help="Set container images of the pod template: CONTAINER=IMAGE "
                 "(`*` for every container); the strategy then rolls it out." + _GITOPS_NOTE)
def set_image(
    ctx: typer.Context,
    name: NameArg,
    images: Annotated[list[str], typer.Argument(
        metavar="CONTAINER=IMAGE", help="Container name (or *) and its new image.")],
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    from rollouts.cli import release
    from rollouts.cli.kubeopts import CliError

    try:
        assignments = release.parse_assignments(images)
    except CliError as exc:
        raise fail(exc.message, 2) from None
    _change_spec(ctx, name, namespace, kubeconfig, context, "image updated",
                 lambda body, _: release.with_images(
                     (body.get("spec") or {}).get("template") or {}, assignments))


@commands.command(help="Roll back to an earlier revision's pod template (default: the previous "
             "one); the strategy rolls it out, or returns to stable at once if it is the "
             "stable revision." + _GITOPS_NOTE)
def undo(
    ctx: typer.Context,
    name: NameArg,
    to_revision: Annotated[
        int | None, typer.Option("--to-revision", metavar="N", min=1,
                                 help="The revision (rollouts.dev/revision of its ReplicaSet).")
    ] = None,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    from rollouts.cli import release

    _change_spec(ctx, name, namespace, kubeconfig, context, "rolled back",
                 lambda body, owned: release.undo_template(body, owned, to_revision),
                 needs_replica_sets=True)


@commands.command(help="Replace every pod of the Rollout, one at a time, without a new revision "
             "(sets spec.restartAt; pods created before it are evicted and recreated within "
             "maxUnavailable)." + _GITOPS_NOTE)
def restart(
    ctx: typer.Context,
    name: NameArg,
    in_: Annotated[str | None, typer.Option(
        "--in", metavar="DURATION", help="Start the restart this long from now (e.g. 30s, 5m).")
    ] = None,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    from rollouts.cli import restart as restarting
    from rollouts.cli.kubeopts import CliError
    from rollouts.cli.release import GITOPS_WARNING
    from rollouts.clock import SystemClock
    from rollouts.models.wire import format_time

    try:
        moment = restarting.restart_moment(SystemClock().now(), in_)
    except CliError as exc:
        raise fail(exc.message, 2) from None
    g = command_globals(ctx, namespace, kubeconfig, context)

    async def run() -> None:
        async with g.client() as client:
            ns = g.resolved_namespace()
            done = await restarting.request_restart(client, ns, name, moment)
        stdout_console().print(f"rollout {name} restart requested (namespace {ns})", markup=False)
        stdout_console().print(f"  restartAt: {done.previous or '-'} -> "
                        f"{format_time(done.restart_at)}", markup=False)
        stderr_console().print(f"[yellow]warning:[/] {GITOPS_WARNING}", soft_wrap=True)

    run_command(run, g)


def _change_spec(ctx: typer.Context, name: str, namespace: str | None,
                 kubeconfig: str | None, context: str | None, done: str,
                 decide: Any, *, needs_replica_sets: bool = False) -> None:
    from rollouts.cli.release import GITOPS_WARNING, change_template

    g = command_globals(ctx, namespace, kubeconfig, context)

    async def run() -> None:
        async with g.client() as client:
            ns = g.resolved_namespace()
            result = await change_template(client, ns, name, decide,
                                           needs_replica_sets=needs_replica_sets)
        if not result.lines:
            stdout_console().print(f"rollout {name} unchanged (namespace {ns})", markup=False)
            return
        stdout_console().print(f"rollout {name} {done} (namespace {ns})", markup=False)
        for line in result.lines:
            stdout_console().print(f"  {line}", markup=False, soft_wrap=True)
        stderr_console().print(f"[yellow]warning:[/] {GITOPS_WARNING}", soft_wrap=True)

    run_command(run, g)

