"""The commands that need no cluster: `lint`, `convert`, `replay` (against Prometheus
history), `version` and `gen-crds`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from rollouts import __version__
from rollouts.cli.app import (
    Output,
    OutputOpt,
    fail,
)

# Registered on `app` by rollouts.cli.main, in the order of `rollouts --help`.
commands = typer.Typer()


@commands.command()
def lint(
    paths: Annotated[list[Path], typer.Argument(help="YAML files or directories ('-': stdin).")],
) -> None:
    """Validate Rollout and AnalysisTemplate manifests without a cluster."""
    from rollouts.cli.lint import lint_command

    raise typer.Exit(lint_command(paths, sys.stdout, sys.stderr))


@commands.command()
def convert(
    paths: Annotated[list[Path], typer.Argument(help="Argo Rollouts manifests ('-': stdin).")],
) -> None:
    """Turn argoproj.io/v1alpha1 manifests into rollouts.dev/v1alpha1 (YAML on stdout)."""
    from rollouts.cli.convert import convert_command

    raise typer.Exit(convert_command(paths, sys.stdout, sys.stderr))


@commands.command()
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
        raise fail("replay prints text or json (-o json)", 2)
    code = guarded(lambda: replay_command(
        paths, start=start, end=end, step=step, prometheus_address=prometheus_address,
        canary_hash=canary_hash, stable_hash=stable_hash, output_json=output is Output.json,
        out=sys.stdout, err=sys.stderr), sys.stderr, "replay")
    raise typer.Exit(EXIT_INTERNAL if code is None else code)


@commands.command()
def version() -> None:
    """Print the version."""
    sys.stdout.write(f"rollouts {__version__}\n")


@commands.command("gen-crds")
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
                raise fail(f"CRDs in {target} are out of date: {', '.join(differ)} "
                            "(run `rollouts gen-crds`)")
            sys.stdout.write(f"CRDs in {target} are up to date\n")
            continue
        for path in write_crds(target):
            sys.stdout.write(f"{path}\n")


CHART_CRDS = Path("charts/rollouts/crds")

