-- abort: all traffic back to stable, the new revision scaled down (`rollouts abort`).
obj.status.abort = true
obj.status.abortedAt = os.date("!%Y-%m-%dT%H:%M:%SZ")
obj.status.abortMessage = "Rollout aborted by user"
return obj
