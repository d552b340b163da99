-- alerts gain the rule's author and Sigma level (Sigma's licence asks for the author's credit
-- where matches are shown), the rule's format, and what change awareness did: the severity
-- before an explaining change lowered it, the change ids and the explanation. Rows written
-- before stay with empty values.
{{.AddColumn "alerts" "author" "String"}}
{{.AddColumn "alerts" "level" (.LowCardinality "String")}}
{{.AddColumn "alerts" "rule_source" (.LowCardinality "String")}}
{{.AddColumn "alerts" "original_severity" (.LowCardinality "String")}}
{{.AddColumn "alerts" "changes" "Array(String)"}}
{{.AddColumn "alerts" "explanation" "String"}}
{{.Redistribute "alerts" "cityHash64(alert_id)"}}
