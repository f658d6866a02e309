"""The `rollouts` command (also installed as `kubectl-rollouts`).

Read commands (`get`, `list`, `status`) print for humans or, with `-o json|yaml`, for
machines. Operations (`promote`, `abort`, `retry`, `pause`, `resume`) write the Rollout's
status only. `lint` and `convert` work on files, offline. Exit codes: 0 success, 1 failure
(not found, forbidden, refused operation, failed rollout, lint errors), 2 timeout or a
rollout still in progress (`status`), and usage errors; 3 an internal error of `lint` or
`convert` (a bug, as opposed to findings in the input).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from rollouts import __version__
from rollouts.cli.completion import complete_rollout_names
from rollouts.cli.helpfmt import RolloutsGroup
from rollouts.cli.kubeopts import CliError, Globals
from rollouts.errors import OperationError

# Everything that talks to a cluster or renders a Rollout (httpx, kubernetes, pydantic models,
# rich) is imported by the command that needs it, so `version`, `--help` and shell completion
# start fast (tests/cli/test_startup.py).
if TYPE_CHECKING:
    from rich.console import Console

    from rollouts.cli import render

T = TypeVar("T")

app = typer.Typer(
    name="rollouts",
    help="Progressive delivery for Kubernetes: inspect and steer canary and blue-green "
    "Rollouts (rollouts.dev/v1alpha1).",
    cls=RolloutsGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Output(StrEnum):
    json = "json"
    yaml = "yaml"


class LogFormat(StrEnum):  # the controller's logs (rollouts.logs)
    json = "json"
    text = "text"


NamespaceOpt = Annotated[
    str | None,
    typer.Option("--namespace", "-n", metavar="NAMESPACE",
                 help="Namespace (default: the kubeconfig context's)."),
]
KubeconfigOpt = Annotated[
    str | None, typer.Option("--kubeconfig", metavar="PATH", help="Path to the kubeconfig file.")
]
ContextOpt = Annotated[
    str | None, typer.Option("--context", metavar="CONTEXT", help="Kubeconfig context.")
]
AllNamespacesOpt = Annotated[
    bool, typer.Option("--all-namespaces", "-A", help="Rollouts in every namespace.")
]
OutputOpt = Annotated[
    Output | None, typer.Option("--output", "-o", help="Print json or yaml instead.")
]


NameArg = Annotated[
    str, typer.Argument(help="Name of the Rollout.", autocompletion=complete_rollout_names)
]


# --- plumbing --------------------------------------------------------------------------------


def _stdout() -> Console:
    from rich.console import Console

    # Colour only on a terminal; rich honours NO_COLOR and TERM=dumb by itself.
    return Console(highlight=False, emoji=False)


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, emoji=False)


def _fail(message: str, code: int = 1) -> typer.Exit:
    from rich.markup import escape

    _stderr().print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def _run(make: Callable[[], Awaitable[T]], settings: Globals | None = None) -> T:
    """Run one command's coroutine; expected failures become a line on stderr."""
    import asyncio

    try:
        return asyncio.run(_as_coroutine(make))
    except CliError as exc:
        raise _fail(_explained(exc, settings), exc.code) from None
    except OperationError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _explained(exc: CliError, settings: Globals | None) -> str:
    """A request that never reached the server is told with the server and the context."""
    import httpx

    cause = exc.__cause__
    if settings is not None and isinstance(cause, httpx.TransportError):
        return settings.unreachable(cause)
    return exc.message


async def _as_coroutine(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _globals(ctx: typer.Context, namespace: str | None, kubeconfig: str | None,
             context: str | None) -> Globals:
    """Global options, overridden by the same options given after the command name."""
    base = ctx.obj if isinstance(ctx.obj, Globals) else Globals()
    return Globals(
        kubeconfig=kubeconfig or base.kubeconfig,
        context=context or base.context,
        namespace=namespace or base.namespace,
        transport=base.transport,
    )


def _dump(data: Any, output: Output) -> str:
    if output is Output.json:
        return json.dumps(data, indent=2, sort_keys=False) + "\n"
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _print_data(data: Any, output: Output) -> None:
    sys.stdout.write(_dump(data, output))
    sys.stdout.flush()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"rollouts {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version,
                           help="Print the version and exit.")
    ] = False,
) -> None:
    base = ctx.obj if isinstance(ctx.obj, Globals) else Globals()
    ctx.obj = Globals(kubeconfig=kubeconfig or base.kubeconfig,
                      context=context or base.context,
                      namespace=namespace or base.namespace,
                      transport=base.transport)


# --- read commands ---------------------------------------------------------------------------


@app.command()
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

    g = _globals(ctx, namespace, kubeconfig, context)

    async def once() -> None:
        async with g.client() as client:
            ns = g.resolved_namespace()
            wanted = experiment_name(name)
            try:
                if wanted is None and output is not None:
                    _print_data(await get_rollout(client, ns, name), output)
                    return
                if wanted is None:
                    view = await fetch_view(client, ns, name)
                    _stdout().print(render.rollout_tree(view, _now()))
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
            _print_data(experiment, output)
        else:
            _stdout().print(experiment_tree(experiment, runs, _now()))

    async def follow() -> None:
        if experiment_name(name) is not None:
            raise CliError("--watch follows Rollouts only; drop it to show the Experiment")
        async with g.client() as client:
            ns = g.resolved_namespace()
            await get_rollout(client, ns, name)  # a clear "not found" before watching
            await _live(client, ns, name, output)

    _run(follow if watch else once, g)


async def _live(client: Any, namespace: str, name: str, output: Output | None) -> None:
    import asyncio

    from rich.live import Live

    from rollouts.cli import render
    from rollouts.cli.cluster import watch_views

    console = _stdout()

    def draw(view: render.RolloutView | None) -> Any:
        if view is None:
            return f"rollout {name} not found in namespace {namespace} (waiting)"
        if output is not None:
            return _dump(view.rollout.model_dump(by_alias=True, exclude_none=True,
                                                 mode="json"), output)
        return render.rollout_tree(view, _now())

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


@app.command("list")
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

    g = _globals(ctx, namespace, kubeconfig, context)

    async def run() -> None:
        async with g.client() as client:
            ns = None if all_namespaces else g.resolved_namespace()
            bodies = await list_rollouts(client, ns)
        now = _now()
        rollouts = [render.parse_rollout(b) for b in bodies]
        if output is not None:
            _print_data([render.list_row(r, now) for r in rollouts], output)
            return
        if not rollouts:
            where = "any namespace" if ns is None else f"namespace {ns}"
            _stderr().print(f"No rollouts found in {where}.")
            return
        _stdout().print(render.rollouts_table(rollouts, now, all_namespaces=all_namespaces))

    _run(run, g)


@app.command()
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
    g = _globals(ctx, namespace, kubeconfig, context)
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
            _print_data(render.summary(view), output)
        else:
            rollout = view.rollout
            _stdout().print(f"{rollout.metadata.name}: {rollout.status.phase or 'Unknown'}"
                            + (f" - {rollout.status.message}" if rollout.status.message
                               else ""), markup=False, soft_wrap=True)
        if verdict.done and verdict.code != 0:
            _stderr().print(f"rollout {name} {verdict.reason}", markup=False, soft_wrap=True)
        elif not verdict.done:
            what = "timed out" if seconds is not None else "not done"
            _stderr().print(f"rollout {name} {what}: {verdict.reason}", markup=False,
                            soft_wrap=True)
        return verdict.code if verdict.done else 2

    code = _run(run, g)
    raise typer.Exit(code)


# --- operations ------------------------------------------------------------------------------

def _operate(ctx: typer.Context, operation: str, name: str, namespace: str | None,
             kubeconfig: str | None, context: str | None, *, full: bool = False) -> None:
    from rollouts.cli import changes
    from rollouts.cli.cluster import write_operation

    g = _globals(ctx, namespace, kubeconfig, context)

    async def run() -> None:
        async with g.client() as client:
            ns = g.resolved_namespace()
            result = await write_operation(client, ns, name, operation, full=full)
        console = _stdout()
        console.print(changes.operation_done(name, ns, operation, full=full), markup=False,
                      soft_wrap=True)
        for line in changes.operation_changes(result.before, result.updates):
            console.print(f"  {line}", markup=False, soft_wrap=True)

    _run(run, g)


@app.command()
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


@app.command()
def abort(
    ctx: typer.Context,
    name: NameArg,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Send all traffic back to the stable revision and scale the new one down."""
    _operate(ctx, "abort", name, namespace, kubeconfig, context)


@app.command()
def retry(
    ctx: typer.Context,
    name: NameArg,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Start an aborted Rollout over from its first step."""
    _operate(ctx, "retry", name, namespace, kubeconfig, context)


@app.command()
def pause(
    ctx: typer.Context,
    name: NameArg,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Hold an update where it is until `resume`."""
    _operate(ctx, "pause", name, namespace, kubeconfig, context)


@app.command()
def resume(
    ctx: typer.Context,
    name: NameArg,
    namespace: NamespaceOpt = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Lift a pause set with `pause`."""
    _operate(ctx, "resume", name, namespace, kubeconfig, context)


# --- spec changes (rollouts/cli/release.py): each warns that in GitOps they belong in Git ---

set_app = typer.Typer(help="Change a Rollout's spec (GitOps: change it in Git instead).",
                      cls=RolloutsGroup, no_args_is_help=True)
app.add_typer(set_app, name="set")
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
        raise _fail(exc.message, 2) from None
    _change_spec(ctx, name, namespace, kubeconfig, context, "image updated",
                 lambda body, _: release.with_images(
                     (body.get("spec") or {}).get("template") or {}, assignments))


@app.command(help="Roll back to an earlier revision's pod template (default: the previous "
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


@app.command(help="Replace every pod of the Rollout, one at a time, without a new revision "
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
        raise _fail(exc.message, 2) from None
    g = _globals(ctx, namespace, kubeconfig, context)

    async def run() -> None:
        async with g.client() as client:
            ns = g.resolved_namespace()
            done = await restarting.request_restart(client, ns, name, moment)
        _stdout().print(f"rollout {name} restart requested (namespace {ns})", markup=False)
        _stdout().print(f"  restartAt: {done.previous or '-'} -> "
                        f"{format_time(done.restart_at)}", markup=False)
        _stderr().print(f"[yellow]warning:[/] {GITOPS_WARNING}", soft_wrap=True)

    _run(run, g)


def _change_spec(ctx: typer.Context, name: str, namespace: str | None,
                 kubeconfig: str | None, context: str | None, done: str,
                 decide: Any, *, needs_replica_sets: bool = False) -> None:
    from rollouts.cli.release import GITOPS_WARNING, change_template

    g = _globals(ctx, namespace, kubeconfig, context)

    async def run() -> None:
        async with g.client() as client:
            ns = g.resolved_namespace()
            result = await change_template(client, ns, name, decide,
                                           needs_replica_sets=needs_replica_sets)
        if not result.lines:
            _stdout().print(f"rollout {name} unchanged (namespace {ns})", markup=False)
            return
        _stdout().print(f"rollout {name} {done} (namespace {ns})", markup=False)
        for line in result.lines:
            _stdout().print(f"  {line}", markup=False, soft_wrap=True)
        _stderr().print(f"[yellow]warning:[/] {GITOPS_WARNING}", soft_wrap=True)

    _run(run, g)


@app.command()
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

    g = _globals(ctx, namespace, kubeconfig, context)
    try:
        scope = None if all_namespaces else g.resolved_namespace()
    except CliError as exc:
        raise _fail(exc.message, exc.code) from None
    settings = Settings(namespace=scope, address=address, port=port)
    err = _stderr()

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
        raise _fail(_explained(exc, g), exc.code) from None


# --- offline commands ------------------------------------------------------------------------


@app.command()
def lint(
    paths: Annotated[list[Path], typer.Argument(help="YAML files or directories ('-': stdin).")],
) -> None:
    """Validate Rollout and AnalysisTemplate manifests without a cluster."""
    from rollouts.cli.lint import lint_command

    raise typer.Exit(lint_command(paths, sys.stdout, sys.stderr))


@app.command()
def convert(
    paths: Annotated[list[Path], typer.Argument(help="Argo Rollouts manifests ('-': stdin).")],
) -> None:
    """Turn argoproj.io/v1alpha1 manifests into rollouts.dev/v1alpha1 (YAML on stdout)."""
    from rollouts.cli.convert import convert_command

    raise typer.Exit(convert_command(paths, sys.stdout, sys.stderr))


@app.command()
def replay(
    paths: Annotated[list[Path], typer.Argument(help="The Rollout and its AnalysisTemplates.")],
    start: Annotated[str, typer.Option("--from", metavar="TIME",
                                       help="Release start: RFC 3339 or unix seconds.")],
    end: Annotated[str, typer.Option("--to", metavar="TIME", help="End of the window.")],
    step: Annotated[str, typer.Option("--step", metavar="DURATION",
                                      help="Tick of the replay's clock.")] = "1m",
    prometheus_address: Annotated[str | None, typer.Option(
        "--prometheus-address", metavar="URL",
        help="Query this Prometheus instead of each metric's address.")] = None,
    canary_hash: Annotated[str | None, typer.Option(
        "--canary-hash", metavar="HASH",
        help="podTemplateHashValue Latest (default: the Rollout's status).")] = None,
    stable_hash: Annotated[str | None, typer.Option(
        "--stable-hash", metavar="HASH",
        help="podTemplateHashValue Stable (default: the Rollout's status).")] = None,
    output: OutputOpt = None,
) -> None:
    """What a Rollout's analysis would have decided over a past window (Prometheus history).

    Exit 0 promoted, 1 aborted (or bad input), 2 paused or undecided, 3 internal error.
    """
    from rollouts.cli.lint import EXIT_INTERNAL, guarded
    from rollouts.cli.replay import replay_command

    if output is Output.yaml:
        raise _fail("replay prints text or json (-o json)", 2)
    code = guarded(lambda: replay_command(
        paths, start=start, end=end, step=step, prometheus_address=prometheus_address,
        canary_hash=canary_hash, stable_hash=stable_hash, output_json=output is Output.json,
        out=sys.stdout, err=sys.stderr), sys.stderr, "replay")
    raise typer.Exit(EXIT_INTERNAL if code is None else code)


@app.command()
def version() -> None:
    """Print the version."""
    sys.stdout.write(f"rollouts {__version__}\n")


@app.command("gen-crds")
def gen_crds(
    directory: Annotated[Path, typer.Option("--dir", help="Where the CRD files live.")] = Path(
        "crds"),
    check: Annotated[
        bool, typer.Option("--check", help="Only compare; exit 1 when files differ.")
    ] = False,
) -> None:
    """Generate the CRDs from the models (or check that they are up to date).

    With the default `--dir crds` in a checkout, the Helm chart's copy (charts/rollouts/crds)
    is written and checked too, so the models stay the one source of both.
    """
    from rollouts.models.crds import crds_differ, write_crds

    directories = [directory]
    if directory == Path("crds") and CHART_CRDS.is_dir():
        directories.append(CHART_CRDS)
    for target in directories:
        if check:
            differ = crds_differ(target)
            if differ:
                raise _fail(f"CRDs in {target} are out of date: {', '.join(differ)} "
                            "(run `rollouts gen-crds`)")
            sys.stdout.write(f"CRDs in {target} are up to date\n")
            continue
        for path in write_crds(target):
            sys.stdout.write(f"{path}\n")


CHART_CRDS = Path("charts/rollouts/crds")


# --- commands written elsewhere (imported when run, so the CLI works without them) -----------


@app.command()
def controller(
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", metavar="NAMESPACE",
                     help="Serve this namespace (repeatable)."),
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
    try:
        from rollouts.cli.controller import controller_command
    except ModuleNotFoundError as exc:
        if exc.name != "rollouts.cli.controller":
            raise
        raise _fail("the controller is not part of this build") from None
    from rollouts.analysis.providers.egress import parse_networks
    from rollouts.kube.config import KubeconfigError, UnreachableError, check_reachable, load

    try:
        parse_networks(allow_metric_address or [])
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:  # one line for what a user gets wrong first, before kopf starts
        check_reachable(load(kubeconfig, context))
    except (KubeconfigError, UnreachableError) as exc:
        raise _fail(str(exc)) from None

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
        raise _fail("the demo is not part of this build") from None

    demo_command(keep=keep, fast=fast, dashboard=dashboard)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
