// Package containers says who a container is: its name, image and runtime from the container
// runtime's socket (containerd, CRI-O, docker, podman), and in Kubernetes its pod, namespace,
// labels and workload from the API server's pods of this node.
//
// In: container ids, which the collectors read from a process's cgroup path. Out: a
// *schemas.Container for each id the runtime knows, which the publisher puts on the event
// (process.container) before encoding it.
//
// The sockets are found when the collect stage starts. A lookup never blocks the event it is
// asked for: the first event of a container goes out with its container id only, while one
// background goroutine asks the runtimes and caches the answer (bounded, least recently used
// dropped first; a container no runtime knows is asked again after NegativeTTL). What goes out
// without metadata is counted by reason (crumbs_collector_container_metadata_missing_total),
// and a host with no runtime socket is logged once and said by crumbs doctor.
package containers
