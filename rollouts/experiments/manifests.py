"""Pure builders for the objects an Experiment owns: one ReplicaSet per template, an optional
Service per template, and the names of its AnalysisRuns."""

from __future__ import annotations

import hashlib
from typing import Any

from rollouts.models.experiment import ExperimentTemplate, ValidExperiment
from rollouts.models.template_service import container_ports, exposes
from rollouts.models.wire import (
    EXPERIMENT_LABEL,
    EXPERIMENT_TEMPLATE_LABEL,
    POD_TEMPLATE_HASH_LABEL,
    owner_reference,
)
from rollouts.planner.manifests import hashed, pod_template_hash

_MAX_NAME = 63


def _name(experiment: str, suffix: str) -> str:
    """`{experiment}-{suffix}`, shortened (with a digest) to stay a valid label value."""
    full = f"{experiment}-{suffix}"
    if len(full) <= _MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: _MAX_NAME - len(digest) - 1].rstrip('-')}-{digest}"


def replica_set_name(experiment: str, template: str) -> str:
    return _name(experiment, template)


def analysis_run_name(experiment: str, analysis: str) -> str:
    return _name(experiment, analysis)


def template_hash(experiment: str, template: ExperimentTemplate) -> str:
    """The pod-template hash of a template's pods: unlike the Rollout's own revisions, it
    depends on the Experiment and template names too, so that a baseline running the stable
    template is not selected by the stable Service and its metrics stand apart."""
    return pod_template_hash({"experiment": experiment, "template": template.name,
                              "pod": template.template.to_wire()})


def template_hashes(experiment: ValidExperiment) -> dict[str, str]:
    """Template name -> pod-template hash (what `{{templates.NAME.podTemplateHash}}` is)."""
    name = experiment.metadata.name
    return {t.name: template_hash(name, t) for t in experiment.spec.templates}


def _owner(experiment: ValidExperiment) -> list[dict[str, Any]]:
    return [owner_reference("Experiment", experiment.metadata.name, experiment.metadata.uid)]


def replica_set_manifest(experiment: ValidExperiment, template: ExperimentTemplate,
                         replicas: int) -> dict[str, Any]:
    """The template's ReplicaSet: its pod template with the hash and experiment labels added
    to the pods' labels and the hash to the selector."""
    name = experiment.metadata.name
    pod_hash = template_hash(name, template)
    pod_template, selector = hashed(
        template.template.to_wire(), template.selector, pod_hash,
        {EXPERIMENT_LABEL: name, EXPERIMENT_TEMPLATE_LABEL: template.name})
    labels = pod_template["metadata"]["labels"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": replica_set_name(name, template.name),
            "namespace": experiment.metadata.namespace,
            "labels": labels,
            "ownerReferences": _owner(experiment),
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": template.min_ready_seconds,
            "selector": selector,
            "template": pod_template,
        },
    }


def service_name(experiment: str, template: ExperimentTemplate) -> str:
    given = template.service.name if template.service is not None else None
    return given or replica_set_name(experiment, template.name)


def service_ports(template: ExperimentTemplate) -> list[dict[str, Any]]:
    """The ports the template's containers declare, as Service ports: each on its own
    number, unless `service.ports` maps it (by its number or name as targetPort) to another.

    E.g. container port http/8080 with service.ports [{port: 80, targetPort: 8080}] ->
    {port: 80, targetPort: 8080, name: http, protocol: TCP}."""
    wanted = template.service.ports if template.service is not None else None
    ports: list[dict[str, Any]] = []
    for port in container_ports(template.template.spec):
        number, name = port["containerPort"], port.get("name")
        entry: dict[str, Any] = {"port": number, "targetPort": number,
                                 "protocol": port.get("protocol", "TCP")}
        if name:
            entry["name"] = name
        mapped = next((p for p in wanted or () if exposes(p, number, name)), None)
        if mapped is not None:
            entry.update({"port": mapped.port, "targetPort": mapped.target_port})
            if mapped.name:
                entry["name"] = mapped.name
        ports.append(entry)
    return ports


def service_manifest(experiment: ValidExperiment, template: ExperimentTemplate
                     ) -> dict[str, Any]:
    """A Service selecting exactly this template's pods: ClusterIP on the containers'
    ports, headless when they declare none (a Service without ports must be)."""
    name = experiment.metadata.name
    ports = service_ports(template)
    spec: dict[str, Any] = {
        "selector": {POD_TEMPLATE_HASH_LABEL: template_hash(name, template)}}
    if ports:
        spec["ports"] = ports
    else:
        spec["clusterIP"] = "None"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(name, template),
            "namespace": experiment.metadata.namespace,
            "labels": {EXPERIMENT_LABEL: name, EXPERIMENT_TEMPLATE_LABEL: template.name},
            "ownerReferences": _owner(experiment),
        },
        "spec": spec,
    }
