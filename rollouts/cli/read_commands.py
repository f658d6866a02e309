"""The read commands: `get` (a Rollout's tree, or an Experiment's; `--watch` redraws it),
`list`, and `status` (CI's exit code, `--watch` / `--timeout` wait for the verdict)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from rollouts.cli.app import (
    AllNamespacesOpt,
    ContextOpt,
    KubeconfigOpt,
    NameArg,
    NamespaceOpt,
    Output,
    OutputOpt,
    command_globals,
    dump_as,
    print_data,
    run_command,
    stderr_console,
    stdout_console,
    utc_now,
)
from rollouts.cli.kubeopts import CliError

if TYPE_CHECKING:
    from rollouts.cli import render

# Registered on `app` by rollouts.cli.main, in the order of `rollouts --help`.
commands = typer.Typer()


@commands.command()
def get(
    ctx: typer.Context,
    name: NameArg,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Redraw on every change.")] = False,
    output: OutputOpt = None,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Show a Rollout: phase, steps, weights, revisions, analysis and pause countdown.

    `experiment/NAME` (or a NAME no Rollout has) shows an Experiment instead.
    """
    from rollouts.cli import render
    from rollouts.cli.cluster import fetch_view, get_rollout
    from rollouts.cli.experiment_view import experiment_name, experiment_tree, fetch_experiment
    from rollouts.errors import NotFoundError

    g = command_globals(ctx, namespace, kubeconfig, context)

    async def once() -> None:
        async with g.client() as client:
            ns = g.resolved_namespace()
            wanted = experiment_name(name)
            try:
                if wanted is None and output is not None:
                    print_data(await get_rollout(client, ns, name), output)
                    return
                if wanted is None:
                    view = await fetch_view(client, ns, name)
                    stdout_console().print(render.rollout_tree(view, utc_now()))
                    return
            except CliError as missing:
                if not isinstance(missing.__cause__, NotFoundError):
                    raise
                try:  # no such Rollout: an Experiment of that name, else the Rollout's error
                    experiment, runs = await fetch_experiment(client, ns, name)
                except CliError:
                    raise missing from missing.__cause__  # the Rollout's own error
            else:
                experiment, runs = await fetch_experiment(client, ns, wanted or name)
        if output is not None:
            print_data(experiment, output)
        else:
            stdout_console().print(experiment_tree(experiment, runs, utc_now()))

    async def follow() -> None:
        if experiment_name(name) is not None:
            raise CliError("--watch follows Rollouts only; drop it to show the Experiment")
        async with g.client() as client:
            ns = g.resolved_namespace()
            await get_rollout(client, ns, name)  # a clear "not found" before watching
            await _live(client, ns, name, output)

    run_command(follow if watch else once, g)


async def _live(client: Any, namespace: str, name: str, output: Output | None) -> None:
    import asyncio

    from rich.live import Live

    from rollouts.cli import render
    from rollouts.cli.cluster import watch_views

    console = stdout_console()

    def draw(view: render.RolloutView | None) -> Any:
        if view is None:
            return f"rollout {name} not found in namespace {namespace} (waiting)"
        if output is not None:
            return dump_as(view.rollout.model_dump(by_alias=True, exclude_none=True,
                                                 mode="json"), output)
        return render.rollout_tree(view, utc_now())

    views = watch_views(client, namespace, name)
    latest: render.RolloutView | None = None
    if not console.is_terminal or output is not None:
        # Piped: one full rendering per change, no cursor tricks.
        async for view in views:
            console.print(draw(view))
            console.print()
        return
    with Live(console=console, auto_refresh=False, transient=False) as live:
        pending = asyncio.ensure_future(anext(views))
        try:
            while True:
                # The 1s tick only redraws (pause countdown); changes come from the watches.
                done, _ = await asyncio.wait({pending}, timeout=1.0)
                if pending in done:
                    latest = pending.result()
                    pending = asyncio.ensure_future(anext(views))
                live.update(draw(latest), refresh=True)
        finally:
            pending.cancel()
            await views.aclose()


@commands.command("list")
def list_(
    ctx: typer.Context,
    all_namespaces: AllNamespacesOpt = False,
    output: OutputOpt = None,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """One line per Rollout: strategy, phase, step, canary weight, age."""
    from rollouts.cli import render
    from rollouts.cli.cluster import list_rollouts

    g = command_globals(ctx, namespace, kubeconfig, context)

    async def run() -> None:
        async with g.client() as client:
            ns = None if all_namespaces else g.resolved_namespace()
            bodies = await list_rollouts(client, ns)
        now = utc_now()
        rollouts = [render.parse_rollout(b) for b in bodies]
        if output is not None:
            print_data([render.list_row(r, now) for r in rollouts], output)
            return
        if not rollouts:
            where = "any namespace" if ns is None else f"namespace {ns}"
            stderr_console().print(f"No rollouts found in {where}.")
            return
        stdout_console().print(render.rollouts_table(rollouts, now, all_namespaces=all_namespaces))

    run_command(run, g)


@commands.command()
def status(
    ctx: typer.Context,
    name: NameArg,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Wait until the Rollout is done.")
    ] = False,
    timeout: Annotated[
        str | None,
        typer.Option("--timeout", "-t", metavar="DURATION",
                     help="Give up after this long (30s, 5m); implies --watch; exit 2."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", metavar="paused",
                     help="'paused': also succeed when paused for a human."),
    ] = None,
    output: OutputOpt = None,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """For CI: exit 0 Healthy, 1 Degraded/aborted/invalid, 2 timeout or still in progress."""
    from rollouts.cli import render
    from rollouts.cli.cluster import fetch_view, get_rollout
    from rollouts.cli.verdict import assess as verdict_of
    from rollouts.cli.verdict import wait_for_verdict
    from rollouts.models.base import parse_duration

    if until not in (None, "paused"):
        raise typer.BadParameter("the only accepted value is 'paused'", param_hint="--until")
    seconds: int | None = None
    if timeout is not None:
        try:
            seconds = parse_duration(timeout)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--timeout") from None
    g = command_globals(ctx, namespace, kubeconfig, context)
    until_paused = until == "paused"

    async def run() -> int:
        async with g.client() as client:
            ns = g.resolved_namespace()
            rollout = render.parse_rollout(await get_rollout(client, ns, name))
            verdict = verdict_of(rollout, until_paused=until_paused)
            if not verdict.done and (watch or seconds is not None):
                verdict = await wait_for_verdict(client, ns, name, verdict, seconds, until_paused,
                                      quiet=output is not None)
            view = await fetch_view(client, ns, name)
        final = verdict_of(view.rollout, until_paused=until_paused)
        if final.done or not verdict.done:
            verdict = final if final.done else verdict
        if output is not None:
            print_data(render.summary(view), output)
        else:
            rollout = view.rollout
            stdout_console().print(f"{rollout.metadata.name}: {rollout.status.phase or 'Unknown'}"
                            + (f" - {rollout.status.message}" if rollout.status.message
                               else ""), markup=False, soft_wrap=True)
        if verdict.done and verdict.code != 0:
            stderr_console().print(f"rollout {name} {verdict.reason}", markup=False, soft_wrap=True)
        elif not verdict.done:
            what = "timed out" if seconds is not None else "not done"
            stderr_console().print(f"rollout {name} {what}: {verdict.reason}", markup=False,
                            soft_wrap=True)
        return verdict.code if verdict.done else 2

    code = run_command(run, g)
    raise typer.Exit(code)

