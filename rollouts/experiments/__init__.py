"""Experiments: ReplicaSets run side by side for a while, with AnalysisRuns beside them.

`plan.plan_experiment(experiment, observed, now)` is pure (it decides, the kube layer writes);
`manifests` builds the objects an Experiment owns. The Rollout's `experiment` step creates
Experiments through `rollouts.planner.steps.experiment`.
"""
