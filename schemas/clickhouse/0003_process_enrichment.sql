-- process_events gains the enrichment columns every event table has: the change windows
-- active at the event (ids and types), the deployment current on its host, the artifact
-- verdict of its executable and the policy of its account. Rows written before stay with
-- empty values.
{{.AddColumn "process_events" "change_ids" "Array(String)"}}
{{.AddColumn "process_events" "change_types" "Array(String)"}}
{{.AddColumn "process_events" "deploy_id" "String"}}
{{.AddColumn "process_events" "deploy_version" "String"}}
{{.AddColumn "process_events" "verdict" (.LowCardinality "String")}}
{{.AddColumn "process_events" "verdict_reason" "String"}}
{{.AddColumn "process_events" "account_name" "String"}}
{{.AddColumn "process_events" "account_type" (.LowCardinality "String")}}
{{.Redistribute "process_events" "cityHash64(event_id)"}}
