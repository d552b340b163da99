-- file_events gains the file's modification time after the event: a utimes event (touch -d,
-- -r) shows the time a file was set to, so that timestamps set back can be told from
-- ordinary ones. Rows written before stay at 0.
{{.AddColumn "file_events" "file_mtime" "Int64"}}
{{.Redistribute "file_events" "cityHash64(event_id)"}}
