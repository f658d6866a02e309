-- promote: canary, go to the next step; blue-green, switch to the preview.
-- Written to status, like `rollouts promote` (no drift against Git, no new generation).
local status = obj.status
if obj.spec.strategy.canary ~= nil then
  local index = status.currentStepIndex or 0
  if index < 0 then
    index = 0
  end
  status.currentStepIndex = index + 1
else
  for _, condition in ipairs(status.pauseConditions or {}) do
    if condition.reason == "BlueGreenPause" then
      status.controllerPause = true
    end
  end
end
status.pauseConditions = nil
return obj
