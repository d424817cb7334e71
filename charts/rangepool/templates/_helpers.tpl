{{/* Names and labels shared by every template. */}}

{{- define "rangepool.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rangepool.controllerName" -}}
{{- printf "%s-controller" (include "rangepool.fullname" .) -}}
{{- end -}}

{{- define "rangepool.nodeName" -}}
{{- printf "%s-node" (include "rangepool.fullname" .) -}}
{{- end -}}

{{- define "rangepool.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rangepool
{{- end -}}

{{- define "rangepool.controllerSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "rangepool.nodeSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: node
{{- end -}}

{{- define "rangepool.controllerImage" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "rangepool.installerImage" -}}
{{- printf "%s:%s" .Values.cni.image.repository (.Values.cni.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* True when every family the controller assigns is IPv6. */}}
{{- define "rangepool.ipv6Only" -}}
{{- $v4 := false -}}{{- $v6 := false -}}
{{- if .Values.families -}}
{{- range .Values.families -}}{{- if eq . "ipv4" -}}{{- $v4 = true -}}{{- else -}}{{- $v6 = true -}}{{- end -}}{{- end -}}
{{- else -}}
{{- range .Values.podCIDRs -}}{{- if contains ":" . -}}{{- $v6 = true -}}{{- else -}}{{- $v4 = true -}}{{- end -}}{{- end -}}
{{- end -}}
{{- if and $v6 (not $v4) -}}true{{- end -}}
{{- end -}}

{{- define "rangepool.metricsAddr" -}}
{{- $host := .Values.metrics.bindAddress -}}
{{- if not $host -}}{{- $host = ternary "[::]" "0.0.0.0" (eq (include "rangepool.ipv6Only" .) "true") -}}{{- end -}}
{{- if and (contains ":" $host) (not (hasPrefix "[" $host)) -}}{{- $host = printf "[%s]" $host -}}{{- end -}}
{{- printf "%s:%d" $host (int .Values.metrics.port) -}}
{{- end -}}

{{/* Host path of the plugin's kubeconfig, as written into network configurations. */}}
{{- define "rangepool.pluginKubeconfig" -}}
{{- printf "%s/rangepool/kubeconfig" (trimSuffix "/" .Values.cni.confDir) -}}
{{- end -}}

{{/* Host path of the node agent's socket (in a directory of its own, mounted into the agent),
as written into network configurations. */}}
{{- define "rangepool.agentSocket" -}}
/run/rangepool/agent.sock
{{- end -}}

{{/* The pod-level and container-level hardening both workloads share. */}}
{{- define "rangepool.containerHardening" -}}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
