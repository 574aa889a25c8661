{{/*
Shared helpers of the stand-in Cilium charts. Every chart directory carries the
same templates; behaviour that differs between chart versions is selected with
semverCompare against .Chart.Version.
*/}}

{{/*
Image reference "<repository><suffix>:<tag>[@<digest>]" from an image values map
with the keys repository, tag, digest, useDigest and (optionally) suffix. The
digest is appended only when useDigest is true and a digest is set.
*/}}
{{- define "cilium.image" -}}
{{- $ref := printf "%s%s:%s" .repository (toString (.suffix | default "")) (toString .tag) -}}
{{- if and .useDigest .digest -}}
{{- $ref = printf "%s@%s" $ref .digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{/*
Operator image: "<repository>-generic<suffix>:<tag>[@<genericDigest>]".
*/}}
{{- define "cilium.operator.image" -}}
{{- $ref := printf "%s-generic%s:%s" .repository (toString (.suffix | default "")) (toString .tag) -}}
{{- if and .useDigest .genericDigest -}}
{{- $ref = printf "%s@%s" $ref .genericDigest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{/*
Name of the agent's debug binary: "cilium-dbg" from 1.15, "cilium" before.
*/}}
{{- define "cilium.dbgBinary" -}}
{{- if semverCompare ">=1.15.0" .Chart.Version -}}
cilium-dbg
{{- else -}}
cilium
{{- end -}}
{{- end -}}

{{/*
Name of the agent DaemonSet: configurable with the value "name" from 1.17.
*/}}
{{- define "cilium.agentName" -}}
{{- if semverCompare ">=1.17.0" .Chart.Version -}}
{{- .Values.name | default "cilium" -}}
{{- else -}}
cilium
{{- end -}}
{{- end -}}

{{/*
KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT entries (list items, no key),
rendered only for the values that are set.
*/}}
{{- define "cilium.k8sServiceEnv" -}}
{{- if .Values.k8sServiceHost }}
- name: KUBERNETES_SERVICE_HOST
  value: {{ .Values.k8sServiceHost | quote }}
{{- end }}
{{- if .Values.k8sServicePort }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ .Values.k8sServicePort | quote }}
{{- end }}
{{- end -}}
