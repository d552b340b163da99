-- Every event table that names a process gains what the container runtime and the Kubernetes
-- API say about its container (process.container in the events): container name, image and
-- image id, and the pod's name, namespace, labels (key=value) and workload. Rows written
-- before, and events of processes in no container, keep empty values.
{{.AddColumn "process_events" "container_name" "String"}}
{{.AddColumn "process_events" "container_image" (.LowCardinality "String")}}
{{.AddColumn "process_events" "container_image_id" "String"}}
{{.AddColumn "process_events" "pod_name" "String"}}
{{.AddColumn "process_events" "pod_namespace" (.LowCardinality "String")}}
{{.AddColumn "process_events" "pod_labels" "Array(String)"}}
{{.AddColumn "process_events" "workload_kind" (.LowCardinality "String")}}
{{.AddColumn "process_events" "workload_name" "String"}}
{{.Redistribute "process_events" "cityHash64(event_id)"}}
{{.AddColumn "network_events" "container_name" "String"}}
{{.AddColumn "network_events" "container_image" (.LowCardinality "String")}}
{{.AddColumn "network_events" "container_image_id" "String"}}
{{.AddColumn "network_events" "pod_name" "String"}}
{{.AddColumn "network_events" "pod_namespace" (.LowCardinality "String")}}
{{.AddColumn "network_events" "pod_labels" "Array(String)"}}
{{.AddColumn "network_events" "workload_kind" (.LowCardinality "String")}}
{{.AddColumn "network_events" "workload_name" "String"}}
{{.Redistribute "network_events" "cityHash64(event_id)"}}
{{.AddColumn "file_events" "container_name" "String"}}
{{.AddColumn "file_events" "container_image" (.LowCardinality "String")}}
{{.AddColumn "file_events" "container_image_id" "String"}}
{{.AddColumn "file_events" "pod_name" "String"}}
{{.AddColumn "file_events" "pod_namespace" (.LowCardinality "String")}}
{{.AddColumn "file_events" "pod_labels" "Array(String)"}}
{{.AddColumn "file_events" "workload_kind" (.LowCardinality "String")}}
{{.AddColumn "file_events" "workload_name" "String"}}
{{.Redistribute "file_events" "cityHash64(event_id)"}}
{{.AddColumn "identity_events" "container_name" "String"}}
{{.AddColumn "identity_events" "container_image" (.LowCardinality "String")}}
{{.AddColumn "identity_events" "container_image_id" "String"}}
{{.AddColumn "identity_events" "pod_name" "String"}}
{{.AddColumn "identity_events" "pod_namespace" (.LowCardinality "String")}}
{{.AddColumn "identity_events" "pod_labels" "Array(String)"}}
{{.AddColumn "identity_events" "workload_kind" (.LowCardinality "String")}}
{{.AddColumn "identity_events" "workload_name" "String"}}
{{.Redistribute "identity_events" "cityHash64(event_id)"}}
