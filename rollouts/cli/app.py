"""The `rollouts` Typer application and what its commands share: the global options
(`--kubeconfig`, `--context`, `--namespace`, `--version`), the option and argument types the
commands repeat, the consoles, and `run_command`, which runs a command's coroutine and turns
expected failures into one line on stderr and an exit code. The commands are in
`read_commands`, `write_commands`, `dashboard_command` and `offline_commands`; `main`
assembles them.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
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


# --- what every command uses ------------------------------------------------------------------


def stdout_console() -> Console:
    from rich.console import Console

    # Colour only on a terminal; rich honours NO_COLOR and TERM=dumb by itself.
    return Console(highlight=False, emoji=False)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, emoji=False)


def fail(message: str, code: int = 1) -> typer.Exit:
    from rich.markup import escape

    stderr_console().print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def run_command(make: Callable[[], Awaitable[T]], settings: Globals | None = None) -> T:
    """Run one command's coroutine; expected failures become a line on stderr."""
    import asyncio

    try:
        return asyncio.run(_as_coroutine(make))
    except CliError as exc:
        raise fail(explained(exc, settings), exc.code) from None
    except OperationError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def explained(exc: CliError, settings: Globals | None) -> str:
    """A request that never reached the server is told with the server and the context."""
    import httpx

    cause = exc.__cause__
    if settings is not None and isinstance(cause, httpx.TransportError):
        return settings.unreachable(cause)
    return exc.message


async def _as_coroutine(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def command_globals(ctx: typer.Context, namespace: str | None, kubeconfig: str | None,
             context: str | None) -> Globals:
    """Global options, overridden by the same options given after the command name."""
    base = ctx.obj if isinstance(ctx.obj, Globals) else Globals()
    return Globals(
        kubeconfig=kubeconfig or base.kubeconfig,
        context=context or base.context,
        namespace=namespace or base.namespace,
        transport=base.transport,
    )


def dump_as(data: Any, output: Output) -> str:
    if output is Output.json:
        return json.dumps(data, indent=2, sort_keys=False) + "\n"
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def print_data(data: Any, output: Output) -> None:
    sys.stdout.write(dump_as(data, output))
    sys.stdout.flush()


def utc_now() -> dt.datetime:
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

