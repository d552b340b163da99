package clickhouse

import (
	"time"

	"github.com/threatcrumbs/crumbs/schemas"
)

// column is one column of a table and how to build its values from rows of type T, as the
// typed slice the driver appends at once (far faster than row by row).
type column[T any] struct {
	name  string
	build func(rows []T) any
}

// col returns the column name whose value for a row is get(row).
func col[T, V any](name string, get func(T) V) column[T] {
	return column[T]{name: name, build: func(rows []T) any {
		out := make([]V, len(rows))
		for i, r := range rows {
			out[i] = get(r)
		}
		return out
	}}
}

// columns concatenates column lists.
func columns[T any](parts ...[]column[T]) []column[T] {
	var out []column[T]
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// envelopeColumns are event_id, time, time_ns, date, host_id and host_name.
func envelopeColumns[T any](env func(T) *schemas.Envelope) []column[T] {
	return []column[T]{
		col("event_id", func(r T) string { return env(r).EventID }),
		col("time", func(r T) time.Time { t, _, _ := eventTime(env(r).Time); return t }),
		col("time_ns", func(r T) uint64 { _, _, ns := eventTime(env(r).Time); return ns }),
		col("date", func(r T) time.Time { _, d, _ := eventTime(env(r).Time); return d }),
		col("host_id", func(r T) string { return env(r).Host.ID }),
		col("host_name", func(r T) string { return env(r).Host.Name }),
	}
}

var noEnrichment = &schemas.Enrichment{}

// enrichmentColumns are the columns the enricher's fields land in; a raw event (nil
// enrichment) has them empty.
func enrichmentColumns[T any](enrichment func(T) *schemas.Enrichment) []column[T] {
	en := func(r T) *schemas.Enrichment {
		if e := enrichment(r); e != nil {
			return e
		}
		return noEnrichment
	}
	return []column[T]{
		col("service", func(r T) string { return en(r).Service }),
		col("environment", func(r T) string { return en(r).Environment }),
		col("role", func(r T) string { return en(r).Role }),
		col("change_ids", func(r T) []string {
			out := make([]string, len(en(r).Changes))
			for i, c := range en(r).Changes {
				out[i] = c.ID
			}
			return out
		}),
		col("change_types", func(r T) []string {
			out := make([]string, len(en(r).Changes))
			for i, c := range en(r).Changes {
				out[i] = c.Type
			}
			return out
		}),
		col("deploy_id", func(r T) string {
			if d := en(r).Deploy; d != nil {
				return d.ID
			}
			return ""
		}),
		col("deploy_version", func(r T) string {
			if d := en(r).Deploy; d != nil {
				return d.Version
			}
			return ""
		}),
		col("verdict", func(r T) string { return en(r).Verdict }),
		col("verdict_reason", func(r T) string { return en(r).VerdictReason }),
		col("account_name", func(r T) string {
			if a := en(r).Account; a != nil {
				return a.Name
			}
			return ""
		}),
		col("account_type", func(r T) string {
			if a := en(r).Account; a != nil {
				return a.Type
			}
			return ""
		}),
	}
}

// actorColumns are the process that caused a network, file or identity event.
func actorColumns[T any](actor func(T) *schemas.Actor) []column[T] {
	return []column[T]{
		col("pid", func(r T) int32 { return actor(r).PID }),
		col("exe_path", func(r T) string { return actor(r).File.Path }),
		col("exe_name", func(r T) string { return actor(r).File.Name }),
		col("exe_sha256", func(r T) string { return actor(r).File.SHA256 }),
		col("cmd_line", func(r T) string { return actor(r).CmdLine }),
		col("uid", func(r T) int64 { return actor(r).User.UID }),
		col("user_name", func(r T) string { return actor(r).User.Name }),
		col("cgroup_id", func(r T) int64 { return actor(r).CgroupID }),
		col("systemd_unit", func(r T) string { return actor(r).SystemdUnit }),
		col("container_id", func(r T) string { return actor(r).ContainerID }),
	}
}

type procEv = *schemas.ProcessEvent

var processTable = columns(
	envelopeColumns(func(e procEv) *schemas.Envelope { return &e.Envelope })[:4],
	[]column[procEv]{col("kind", func(e procEv) string { return e.Kind })},
	envelopeColumns(func(e procEv) *schemas.Envelope { return &e.Envelope })[4:],
	[]column[procEv]{
		col("action", func(e procEv) string { return e.Action }),
		col("pid", func(e procEv) int32 { return e.Process.PID }),
		col("ppid", func(e procEv) int32 { return e.Process.PPID }),
		col("cmd_line", func(e procEv) string { return e.Process.CmdLine }),
		col("args", func(e procEv) []string { return nonNil(e.Process.Args) }),
		col("args_truncated", func(e procEv) uint8 { return boolUInt8(e.Process.ArgsTruncated) }),
		col("cwd", func(e procEv) string { return e.Process.CWD }),
		col("exe_path", func(e procEv) string { return e.Process.File.Path }),
		col("exe_name", func(e procEv) string { return e.Process.File.Name }),
		col("exe_sha256", func(e procEv) string { return e.Process.File.SHA256 }),
		col("uid", func(e procEv) int64 { return e.Process.UID }),
		col("user_name", func(e procEv) string { return e.Process.UserName }),
		col("gid", func(e procEv) int64 { return e.Process.GID }),
		col("group_name", func(e procEv) string { return e.Process.GroupName }),
		col("login_uid", func(e procEv) int64 { return e.Process.LoginUID }),
		col("tty", func(e procEv) string { return e.Process.TTY }),
		col("cgroup_id", func(e procEv) int64 { return e.Process.CgroupID }),
		col("systemd_unit", func(e procEv) string { return e.Process.SystemdUnit }),
		col("container_id", func(e procEv) string { return e.Process.ContainerID }),
		col("exit_code", func(e procEv) int32 { return e.Process.ExitCode }),
		col("parent_pid", func(e procEv) int32 { return e.Process.Parent.PID }),
		col("parent_exe_path", func(e procEv) string { return e.Process.Parent.File.Path }),
		col("parent_exe_name", func(e procEv) string { return e.Process.Parent.File.Name }),
		col("parent_exe_sha256", func(e procEv) string { return e.Process.Parent.File.SHA256 }),
		col("parent_cmd_line", func(e procEv) string { return e.Process.Parent.CmdLine }),
	},
	enrichmentColumns(func(e procEv) *schemas.Enrichment { return e.Enrichment }),
)

type netEv = *schemas.NetworkEvent

var networkTable = columns(
	envelopeColumns(func(e netEv) *schemas.Envelope { return &e.Envelope }),
	[]column[netEv]{col("action", func(e netEv) string { return e.Action })},
	actorColumns(func(e netEv) *schemas.Actor { return &e.Process }),
	[]column[netEv]{
		col("direction", func(e netEv) string { return e.Network.Direction }),
		col("protocol", func(e netEv) string { return e.Network.Protocol }),
		col("ip_version", func(e netEv) int32 { return e.Network.IPVersion }),
		col("src_ip", func(e netEv) string { return e.Network.Src.IP }),
		col("src_port", func(e netEv) int32 { return e.Network.Src.Port }),
		col("src_hostname", func(e netEv) string { return e.Network.Src.Hostname }),
		col("dst_ip", func(e netEv) string { return e.Network.Dst.IP }),
		col("dst_port", func(e netEv) int32 { return e.Network.Dst.Port }),
		col("dst_hostname", func(e netEv) string { return e.Network.Dst.Hostname }),
		col("bytes_sent", func(e netEv) int64 { return e.Network.BytesSent }),
		col("bytes_received", func(e netEv) int64 { return e.Network.BytesReceived }),
		col("packets", func(e netEv) int64 { return e.Network.Packets }),
		col("duration_ns", func(e netEv) int64 { return e.Network.DurationNs }),
		col("dns_answers", func(e netEv) []string { return nonNil(e.Network.DNSAnswers) }),
	},
	enrichmentColumns(func(e netEv) *schemas.Enrichment { return e.Enrichment }),
)

type fileEv = *schemas.FileEvent

var fileTable = columns(
	envelopeColumns(func(e fileEv) *schemas.Envelope { return &e.Envelope }),
	[]column[fileEv]{col("action", func(e fileEv) string { return e.Action })},
	actorColumns(func(e fileEv) *schemas.Actor { return &e.Process }),
	[]column[fileEv]{
		col("file_path", func(e fileEv) string { return e.File.Path }),
		col("file_name", func(e fileEv) string { return e.File.Name }),
		col("new_path", func(e fileEv) string { return e.File.NewPath }),
		col("file_sha256", func(e fileEv) string { return e.File.SHA256 }),
		col("file_size", func(e fileEv) int64 { return e.File.Size }),
		col("file_owner", func(e fileEv) string { return e.File.Owner }),
		col("file_group", func(e fileEv) string { return e.File.Group }),
		col("file_uid", func(e fileEv) int64 { return e.File.UID }),
		col("file_gid", func(e fileEv) int64 { return e.File.GID }),
		col("file_mode", func(e fileEv) string { return e.File.Mode }),
		col("changed", func(e fileEv) []string { return nonNil(e.File.Changed) }),
	},
	enrichmentColumns(func(e fileEv) *schemas.Enrichment { return e.Enrichment }),
)

type idEv = *schemas.IdentityEvent

var identityTable = columns(
	envelopeColumns(func(e idEv) *schemas.Envelope { return &e.Envelope }),
	[]column[idEv]{col("action", func(e idEv) string { return e.Action })},
	actorColumns(func(e idEv) *schemas.Actor { return &e.Process }),
	[]column[idEv]{
		col("identity_service", func(e idEv) string { return e.Identity.Service }),
		col("user", func(e idEv) string { return e.Identity.User }),
		col("target_user", func(e idEv) string { return e.Identity.TargetUser }),
		col("remote_host", func(e idEv) string { return e.Identity.RemoteHost }),
		col("result", func(e idEv) string { return e.Identity.Result }),
		col("code", func(e idEv) int32 { return e.Identity.Code }),
		col("old_uid", func(e idEv) int64 { return e.Identity.OldUID }),
		col("new_uid", func(e idEv) int64 { return e.Identity.NewUID }),
		col("old_gid", func(e idEv) int64 { return e.Identity.OldGID }),
		col("new_gid", func(e idEv) int64 { return e.Identity.NewGID }),
	},
	enrichmentColumns(func(e idEv) *schemas.Enrichment { return e.Enrichment }),
)

type sysEv = *schemas.SystemEvent

var systemTable = columns(
	envelopeColumns(func(e sysEv) *schemas.Envelope { return &e.Envelope }),
	[]column[sysEv]{
		col("scope", func(e sysEv) string { return e.System.Scope }),
		col("unit", func(e sysEv) string { return e.System.Unit }),
		col("cgroup_id", func(e sysEv) int64 { return e.System.CgroupID }),
		col("interval_ns", func(e sysEv) int64 { return e.System.IntervalNs }),
		col("cpu_seconds", func(e sysEv) float64 { return e.System.CPUSeconds }),
		col("memory_bytes", func(e sysEv) int64 { return e.System.MemoryBytes }),
		col("process_count", func(e sysEv) int64 { return e.System.ProcessCount }),
		col("connections", func(e sysEv) int64 { return e.System.Connections }),
		col("bytes_sent", func(e sysEv) int64 { return e.System.BytesSent }),
		col("bytes_received", func(e sysEv) int64 { return e.System.BytesReceived }),
	},
	enrichmentColumns(func(e sysEv) *schemas.Enrichment { return e.Enrichment }),
)

type alert = *schemas.Alert

var alertTable = []column[alert]{
	col("alert_id", func(a alert) string { return a.AlertID }),
	col("time", func(a alert) time.Time { t, _, _ := eventTime(a.Time); return t }),
	col("time_ns", func(a alert) uint64 { _, _, ns := eventTime(a.Time); return ns }),
	col("date", func(a alert) time.Time { _, d, _ := eventTime(a.Time); return d }),
	col("rule_id", func(a alert) string { return a.RuleID }),
	col("title", func(a alert) string { return a.Title }),
	col("severity", func(a alert) string { return a.Severity }),
	col("tags", func(a alert) []string { return nonNil(a.Tags) }),
	col("group_key", func(a alert) string { return a.GroupKey }),
	col("host_id", func(a alert) string { return a.Host.ID }),
	col("host_name", func(a alert) string { return a.Host.Name }),
	col("service", func(a alert) string { return a.Service }),
	col("window_start", func(a alert) time.Time { t, _, _ := eventTime(a.WindowStart); return t }),
	col("window_start_ns", func(a alert) uint64 { _, _, ns := eventTime(a.WindowStart); return ns }),
	col("window_end", func(a alert) time.Time { t, _, _ := eventTime(a.WindowEnd); return t }),
	col("window_end_ns", func(a alert) uint64 { _, _, ns := eventTime(a.WindowEnd); return ns }),
	col("count", func(a alert) int64 { return a.Count }),
	col("evidence", func(a alert) []string { return nonNil(a.Evidence) }),
	col("author", func(a alert) string { return a.Author }),
	col("level", func(a alert) string { return a.Level }),
	col("rule_source", func(a alert) string { return a.RuleSource }),
	col("original_severity", func(a alert) string { return a.OriginalSeverity }),
	col("changes", func(a alert) []string { return nonNil(a.Changes) }),
	col("explanation", func(a alert) string { return a.Explanation }),
	col("summary", func(a alert) string { return a.Summary }),
	col("version", func(a alert) uint64 { return uint64(max(a.Version, 0)) }),
	col("incident_id", func(a alert) string { return a.IncidentID }),
	col("final", func(a alert) uint8 {
		if a.Final {
			return 1
		}
		return 0
	}),
}
