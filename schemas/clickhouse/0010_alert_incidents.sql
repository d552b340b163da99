-- alerts gain the incident they belong to (alerts of one process tree or login session on one
-- host within detector.incidents.span share it; crumbs.incidents carries the incident) and
-- whether the row is the final version of a throttled or early alert (no later version
-- follows). Rows written before have an empty incident_id and final 0.
{{.AddColumn "alerts" "incident_id" "String"}}
{{.AddColumn "alerts" "final" "UInt8"}}
{{.Redistribute "alerts" "cityHash64(alert_id)"}}
