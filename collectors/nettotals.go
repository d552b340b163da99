package collectors

// NetCounters are one cgroup's network totals since the network collector started:
// Connections is the number open now; the byte counts only grow.
type NetCounters struct {
	Connections   int64
	BytesSent     uint64
	BytesReceived uint64
}

// NetTotals gives network totals per cgroup id (the id bpf_get_current_cgroup_id returns,
// the inode of the cgroup v2 directory). The network collector is one; the system collector
// takes it for its per-service connections and bytes. ByCgroup is called once per interval
// and must not block for long; the caller does not keep the map.
type NetTotals interface {
	ByCgroup() map[uint64]NetCounters
}
