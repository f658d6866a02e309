-- retry: start an aborted revision over from its first step (`rollouts retry`).
local status = obj.status
status.abort = nil
status.abortedAt = nil
status.abortMessage = nil
status.currentStepIndex = 0
status.pauseConditions = nil
return obj
