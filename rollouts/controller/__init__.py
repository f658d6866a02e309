"""The controller's plain logic, apart from its kopf wiring (`rollouts.operator`, the only
module that imports kopf): its settings (`config`), the per-operator state and wake-up keys
(`runtime`), the daemon loop (`loop`) and one Rollout's pass (`reconciler`)."""
