{{/* The release's full name, at most 63 characters. */}}
{{- define "rollouts.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rollouts.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rollouts.labels" -}}
{{ include "rollouts.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "rollouts.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rollouts.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rollouts.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "rollouts.ha" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end -}}
{{- end -}}

{{/*
Rules on namespaced kinds: what the controller reads and writes in the namespaces it serves.
Each verb is one the controller (or kopf for it) calls; tests/e2e/test_rbac.py compares
these rules with the requests a canary and a blue-green release make.
*/}}
{{- define "rollouts.namespacedRules" -}}
# The controller's own kinds: Rollouts are watched and carry kopf's finalizer (patch); their
# status is replaced (update, guarded by resourceVersion) through the status subresource;
# AnalysisRuns are created, measured (status; read again with get after a 409), terminated
# (patch) and pruned (delete).
- apiGroups: [rollouts.dev]
  resources: [rollouts]
  verbs: [list, watch, patch]
- apiGroups: [rollouts.dev]
  resources: [rollouts/status]
  verbs: [update]
- apiGroups: [rollouts.dev]
  resources: [analysisruns]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [rollouts.dev]
  resources: [analysisruns/status]
  verbs: [patch]
- apiGroups: [rollouts.dev]
  resources: [analysistemplates]
  verbs: [list, watch]
# Experiments: created by a Rollout's experiment step, watched (each carries kopf's
# finalizer: patch, also spec.terminate), their status replaced like a Rollout's.
- apiGroups: [rollouts.dev]
  resources: [experiments]
  verbs: [list, watch, create, patch]
- apiGroups: [rollouts.dev]
  resources: [experiments/status]
  verbs: [update]
# One ReplicaSet per revision: created, scaled (patch), pruned past revisionHistoryLimit.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [list, watch, create, patch, delete]
# The Deployment a Rollout's workloadRef names: watched (its pod template is the Rollout's)
# and, with scaleDown onsuccess / progressively, scaled down (patch of spec.replicas).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, patch]
# Pods of the Rollout's ReplicaSets: listed only when a pass needs them (role metadata to
# check, a restart due), relabelled in place (canaryMetadata, activeMetadata, ...), and evicted
# one at a time for spec.restartAt (the Eviction subresource honours PodDisruptionBudgets).
- apiGroups: [""]
  resources: [pods]
  verbs: [list, patch]
- apiGroups: [""]
  resources: [pods/eviction]
  verbs: [create]
# Services named by a strategy: their selectors are pinned to a revision (server-side
# apply is a patch); created when missing with spec.strategy.createServices. An experiment
# template with `service` gets one of its own, created and deleted with the Experiment.
- apiGroups: [""]
  resources: [services]
  verbs: [list, watch, patch, create, delete]
# Events on Rollouts (step changes, aborts, promotions); a repeat patches the count.
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
# Credentials a metric provider names (e.g. Prometheus basic auth), read when measured.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# The job metric provider: one Job per measurement, read back, stopped when the run ends.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, create, delete]
{{- with .Values.trafficRouters }}
# Route objects are read (get) on each pass of a Rollout with a router, never listed or
# watched; only the router's own fields are patched.
{{- if .gatewayAPI }}
# Traffic router: Gateway API (backendRefs weights).
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes, grpcroutes, tcproutes]
  verbs: [get, patch]
{{- end }}
{{- if .istio }}
# Traffic router: Istio.
- apiGroups: [networking.istio.io]
  resources: [virtualservices, destinationrules]
  verbs: [get, patch]
{{- end }}
{{- if .ingress }}
# Traffic router: Ingress (NGINX canary ingresses are created and deleted; ALB annotated).
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, patch, create, delete]
{{- end }}
{{- if .smi }}
# Traffic router: SMI (the TrafficSplit is created, owned and deleted by the controller).
- apiGroups: [split.smi-spec.io]
  resources: [trafficsplits]
  verbs: [get, patch, create, delete]
{{- end }}
{{- if .traefik }}
# Traffic router: Traefik.
- apiGroups: [traefik.io]
  resources: [traefikservices]
  verbs: [get, patch]
{{- end }}
{{- if .apisix }}
# Traffic router: Apache APISIX.
- apiGroups: [apisix.apache.org]
  resources: [apisixroutes]
  verbs: [get, patch]
{{- end }}
{{- if .ambassador }}
# Traffic router: Ambassador / Emissary (the <mapping>-canary Mappings are created, owned
# and deleted by the controller).
- apiGroups: [getambassador.io]
  resources: [mappings]
  verbs: [get, patch, create, delete]
{{- end }}
{{- if .appMesh }}
# Traffic router: AWS App Mesh (route weights on the VirtualRouter; the VirtualNodes'
# podSelector follows each side's pod-template hash).
- apiGroups: [appmesh.k8s.aws]
  resources: [virtualservices, virtualrouters, virtualnodes]
  verbs: [get, patch]
{{- end }}
{{- end }}
{{- end -}}

{{/* Rules on cluster-scoped kinds, granted in both modes. */}}
{{- define "rollouts.clusterRules" -}}
{{- if not .Values.watchNamespaces }}
# Serving every namespace, kopf follows the CRDs to discover what it serves (with named
# namespaces it discovers once at start and needs no cluster-wide read of CRDs).
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- end }}
# Shared analysis templates.
- apiGroups: [rollouts.dev]
  resources: [clusteranalysistemplates]
  verbs: [list, watch]
{{- end -}}

{{/* kopf peering: which replica acts. get is the /readyz check; patch is kopf's keepalive. */}}
{{- define "rollouts.peeringRule" -}}
- apiGroups: [kopf.dev]
  resources: [{{ . }}]
  verbs: [get, list, watch, patch]
{{- end -}}
