-- Which rollouts.dev Rollout actions Argo CD offers, and which are disabled right now.
-- The rules are those of `rollouts promote|abort|retry|pause|resume` (they refuse the same
-- requests); tests/gitops/test_argocd.py checks both agree on recorded Rollouts.
local status = obj.status or {}
local conditions = status.pauseConditions or {}

local function has_pause(reason)
  for _, condition in ipairs(conditions) do
    if condition.reason == reason then
      return true
    end
  end
  return false
end

-- A revision other than the stable one is being rolled out.
local in_flight = status.currentPodHash ~= nil and status.currentPodHash ~= status.stableRS
local aborted = status.abort == true
local user_paused = has_pause("PausedByUser")

local can_promote = false
if in_flight and not aborted then
  local canary = obj.spec.strategy.canary
  if canary ~= nil then
    local index = status.currentStepIndex or 0
    if index < 0 then
      index = 0
    end
    can_promote = index < #(canary.steps or {})
  else
    can_promote = #conditions > 0 or status.controllerPause == true
  end
end

local actions = {}
actions["promote"] = {["disabled"] = not can_promote}
actions["promote-full"] = {["disabled"] = aborted or not in_flight or status.promoteFull == true}
actions["abort"] = {["disabled"] = aborted or not in_flight}
actions["retry"] = {["disabled"] = not aborted}
actions["pause"] = {["disabled"] = aborted or not in_flight or user_paused}
actions["resume"] = {["disabled"] = not user_paused}
return actions
