"""`rollouts get experiment/NAME`: an Experiment, its templates and its AnalysisRuns.

`rollouts get NAME` shows the Experiment when there is no Rollout of that name. The
AnalysisRuns listed are those the Experiment controls, each with one line per metric (and
the comparison evidence, as for a Rollout's runs).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from rich.markup import escape
from rich.text import Text
from rich.tree import Tree

from rollouts.cli.kubeopts import GROUP, VERSION, CliError, api_call
from rollouts.cli.render import RUN_STYLE, _metric_line, _phase_text, age, run_info
from rollouts.kube.client import Body, KubeClient
from rollouts.models.experiment import Experiment
from rollouts.models.wire import controller_owner

EXPERIMENTS = "experiments"
# `get experiment/NAME` (also exp/, experiments/): the kinds' names kubectl accepts.
PREFIXES = ("experiment/", "experiments/", "exp/")


def experiment_name(name: str) -> str | None:
    """NAME when `name` asks for an Experiment explicitly (`experiment/NAME`), else None."""
    for prefix in PREFIXES:
        if name.lower().startswith(prefix):
            return name[len(prefix):]
    return None


async def fetch_experiment(client: KubeClient, namespace: str, name: str
                           ) -> tuple[Body, list[Body]]:
    """The Experiment and the AnalysisRuns it controls."""
    async with api_call("get", EXPERIMENTS, namespace, name):
        body = await client.get(GROUP, VERSION, EXPERIMENTS, namespace, name)
    try:
        async with api_call("list", "analysisruns", namespace):
            runs, _ = await client.list(GROUP, VERSION, "analysisruns", namespace)
    except CliError:
        runs = []  # unreadable runs: show the rest
    return body, owned_runs(body, runs)


def owned_runs(experiment: Mapping[str, Any], runs: Iterable[Body]) -> list[Body]:
    uid = (experiment.get("metadata") or {}).get("uid")
    name = (experiment.get("metadata") or {}).get("name")
    found = []
    for run in runs:
        owner = controller_owner(run, "Experiment")
        if owner is not None and owner[0] == name and (not uid or owner[1] in ("", uid)):
            found.append(run)
    return sorted(found, key=lambda r: str((r.get("metadata") or {}).get("name")))


def read_experiment(body: Mapping[str, Any]) -> Experiment:
    try:
        return Experiment.model_validate(dict(body))
    except ValueError:
        return Experiment.model_validate({**body, "status": {}})


def experiment_tree(body: Mapping[str, Any], runs: Iterable[Body], now: dt.datetime) -> Tree:
    experiment = read_experiment(body)
    meta, status, spec = experiment.metadata, experiment.status, experiment.spec
    tree = Tree(Text.assemble(("Experiment ", "bold"), (meta.name, "bold"),
                              f"  (namespace {meta.namespace})"))
    head = Text.assemble("Status:    ", _phase_text(status.phase or "Pending"))
    if status.message:
        head.append(f"  {status.message}")
    tree.add(head)
    duration = spec.get("duration")
    tree.add(f"Duration:  {duration if duration is not None else 'until terminated or the '}"
             + ("" if duration is not None else "required analyses complete"))
    if status.available_at is not None:
        tree.add(f"Available: {age(status.available_at.isoformat(), now)} ago")
    templates = tree.add("Templates")
    shown = status.template_statuses or []
    if not shown:
        for template in spec.get("templates") or ():
            if isinstance(template, Mapping):
                templates.add(Text(f"{template.get('name')}  (not started)", style="dim"))
    for template in shown:
        text = Text(f"{template.name} ")
        text.append(template.status, style=RUN_STYLE.get(template.status, ""))
        text.append(f"  pods {template.replicas}, {template.ready_replicas} ready, "
                    f"{template.available_replicas} available")
        if template.pod_template_hash:
            text.append(f"  hash {template.pod_template_hash}", style="dim")
        if template.service_name:
            text.append(f"  service {template.service_name}", style="dim")
        if template.message:
            text.append(f"  {template.message}", style="dim")
        templates.add(text)
    infos = [run_info(run) for run in runs]
    if infos:
        analysis = tree.add("Analysis")
        for info in infos:
            heading = Text(f"{info.name} ")
            heading.append(info.status.phase, style=RUN_STYLE.get(info.status.phase, ""))
            node = analysis.add(heading)
            if info.status.message:
                node.add(Text(escape(info.status.message), style="dim"))
            for result in info.status.metric_results:
                node.add(_metric_line(result, [info.status.message or ""]))
    return tree
