-- Argo CD health check for rollouts.dev Rollouts
-- (argocd-cm key: resource.customizations.health.rollouts.dev_Rollout; see argocd-cm.yaml)
hs = {}
if obj.status == nil or obj.metadata.generation ~= obj.status.observedGeneration then
  hs.status = "Progressing"
  hs.message = "Waiting for the rollout controller to observe the latest spec"
  return hs
end
local phase = obj.status.phase
if phase == "Healthy" then
  hs.status = "Healthy"
elseif phase == "Paused" then
  hs.status = "Suspended"
elseif phase == "Degraded" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = obj.status.message or ""
return hs
