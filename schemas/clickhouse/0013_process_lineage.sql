-- process_events gains what names a process and its parent beyond their pids (their start
-- times: a pid alone may be reused), the effective ids after an exec (a setuid or setgid
-- executable's), the session, and what the standard input and output were at exec (a shell
-- reading from a socket is a reverse shell). Rows written before stay with zero or empty
-- values (euid and egid -1: unknown).
{{.AddColumn "process_events" "start_time" "Int64"}}
{{.AddColumn "process_events" "parent_start_time" "Int64"}}
{{.AddColumn "process_events" "euid" "Int64 DEFAULT -1"}}
{{.AddColumn "process_events" "egid" "Int64 DEFAULT -1"}}
{{.AddColumn "process_events" "session_id" "Int32"}}
{{.AddColumn "process_events" "stdin_type" (.LowCardinality "String")}}
{{.AddColumn "process_events" "stdout_type" (.LowCardinality "String")}}
{{.Redistribute "process_events" "cityHash64(event_id)"}}
