"""The planner: pure decisions from (Rollout, Observed, now) to a Plan."""
