-- resume: lift a user's pause; pause steps stay (promote lifts those) (`rollouts resume`).
local status = obj.status
local remaining = {}
for _, condition in ipairs(status.pauseConditions or {}) do
  if condition.reason ~= "PausedByUser" then
    table.insert(remaining, condition)
  end
end
if #remaining == 0 then
  remaining = nil
end
status.pauseConditions = remaining
return obj
