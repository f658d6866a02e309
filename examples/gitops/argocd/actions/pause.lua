-- pause: hold the rollout where it is until resume or promote (`rollouts pause`).
local status = obj.status
local conditions = status.pauseConditions or {}
table.insert(conditions, {reason = "PausedByUser", startTime = os.date("!%Y-%m-%dT%H:%M:%SZ")})
status.pauseConditions = conditions
return obj
