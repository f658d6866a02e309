-- promote-full: skip every remaining step, pause and analysis (`rollouts promote --full`).
obj.status.promoteFull = true
obj.status.pauseConditions = nil
return obj
