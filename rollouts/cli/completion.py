"""Shell completion of Rollout names (typer asks while the user presses Tab)."""

from __future__ import annotations

from typing import Any

import typer

from rollouts.cli.kubeopts import Globals


def complete_rollout_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of NAME: the Rollouts of the namespace the command line names.

    Best effort: any failure (no kubeconfig, no server) completes nothing rather than
    printing into the user's shell.
    """
    import asyncio

    given: dict[str, Any] = {}
    for level in (ctx.parent, ctx):
        if level is not None:
            given.update({k: v for k, v in level.params.items() if v})
    settings = Globals(kubeconfig=given.get("kubeconfig"), context=given.get("context"),
                       namespace=given.get("namespace"))

    async def names() -> list[str]:
        from rollouts.cli.cluster import list_rollouts

        async with settings.client() as client:
            bodies = await list_rollouts(client, settings.resolved_namespace())
        return [str(b.get("metadata", {}).get("name", "")) for b in bodies]

    try:
        found = asyncio.run(asyncio.wait_for(names(), timeout=3))
    except Exception:
        return []
    return [name for name in found if name.startswith(incomplete)]
