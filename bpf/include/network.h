/* Records and map values the network programs (network.bpf.c) share with user space
 * (collectors/network), which decodes them with the Go types bpf2go generates from these
 * definitions: a change here is a change of that contract, so run go generate. */
#ifndef CRUMBS_NETWORK_H
#define CRUMBS_NETWORK_H

#define COMM_BYTES 16
/* Largest DNS response payload copied to user space; longer ones are cut (the parser
 * keeps what is complete). A power of two, for the verifier's bound. */
#define DNS_MAX_BYTES 1024

enum net_event_kind {
	NET_EVENT_CONNECT = 1, /* an outbound TCP connection was established */
	NET_EVENT_ACCEPT = 2,  /* an inbound TCP connection was accepted */
	NET_EVENT_CLOSE = 3,   /* a connection reported open closed; bytes are final */
	NET_EVENT_LISTEN = 4,  /* a TCP socket started listening */
	NET_EVENT_DNS = 5,     /* a DNS response (UDP from port 53) was read by a process */
};

enum net_direction {
	NET_DIR_NONE = 0,
	NET_DIR_OUTBOUND = 1,
	NET_DIR_INBOUND = 2,
};

/* tuple: addresses in network byte order (IPv4 in the first 4 bytes), ports in host order. */
struct tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family; /* AF_INET or AF_INET6 */
	__u16 _pad;
};

/* How far a connection's reporting went (conn_info.reported), changed atomically: the
 * close of a connection still at REPORT_NONE writes one record for its whole life. */
enum net_report {
	REPORT_NONE = 0,   /* established, no record written yet (within the coalesce window) */
	REPORT_OPEN = 1,   /* its connect or accept record was written */
	REPORT_CLOSED = 2, /* its last record was written */
};

/* conn_info: the "conns" map's value, keyed by the kernel address of the struct sock, from
 * the moment a process owns the socket (connect: SYN_SENT; accept: the accept call's
 * return) until it closes. bytes_* are refreshed by the refresh iterators (refresh_bytes,
 * refresh_bytes_tcp), or stay 0 where the kernel allows neither. */
struct conn_info {
	__u64 start_ns; /* CLOCK_BOOTTIME: when it was established (0 until then) */
	__u64 cgroup_id;
	__u64 bytes_sent;     /* tcp_sock.bytes_acked at the last refresh */
	__u64 bytes_received; /* tcp_sock.bytes_received at the last refresh */
	__u32 pid;
	__u32 uid;
	__u16 sport; /* to check that the sock the key names is still this connection */
	__u8 direction;
	__u8 established; /* connected or accepted: t is set */
	__u32 reported;   /* enum net_report */
	struct tuple t;
	char comm[COMM_BYTES];
};

/* conn_event: connect, accept, close and listen records. A connect or accept record with
 * closed set is a connection that closed within the coalesce window: ktime_ns is its close,
 * start_ns its establishment, and the bytes are final. */
struct conn_event {
	__u32 kind;
	__u32 pid;
	__u64 ktime_ns; /* CLOCK_BOOTTIME */
	__u64 sock_id;  /* the struct sock's address: names the connection while it is open */
	__u64 cgroup_id;
	__u64 start_ns;
	__u64 bytes_sent;     /* close: tcp_sock.bytes_acked */
	__u64 bytes_received; /* close: tcp_sock.bytes_received */
	__u32 uid;
	__u8 direction;
	__u8 closed;
	__u8 stale; /* its close was not seen (the sock was reused): bytes as last refreshed */
	__u8 _pad;
	struct tuple t;
	char comm[COMM_BYTES];
};

/* dns_event is followed in the ring buffer by len bytes of the response's UDP payload.
 * t.saddr/sport is the server that answered, t.daddr/dport the reading socket. */
struct dns_event {
	__u32 kind;
	__u32 pid;
	__u64 ktime_ns;
	__u64 cgroup_id;
	__u32 uid;
	__u32 len;
	__u32 size; /* the datagram's full length, before the cut to DNS_MAX_BYTES */
	__u32 _pad;
	struct tuple t;
	char comm[COMM_BYTES];
};

/* udp_key and udp_flow: the "udp_flows" map, one entry per (pid, remote endpoint), summed
 * since user space last took it out. */
struct udp_key {
	__u32 pid;
	__u16 family;
	__u16 port; /* remote port, host order */
	__u8 addr[16]; /* remote address */
};

struct udp_flow {
	__u64 first_ns;
	__u64 last_ns;
	__u64 cgroup_id;
	__u64 bytes_sent;
	__u64 bytes_received;
	__u64 packets_sent;
	__u64 packets_received;
	__u32 uid;
	__u16 local_port;
	__u8 direction; /* of the first datagram */
	__u8 _pad;
	__u8 local_addr[16];
	char comm[COMM_BYTES];
};

/* tcp_summary_key and tcp_summary: a "tcp_summaries" map, one entry per (process, direction,
 * remote address, service port), summing the connections that closed within the coalesce
 * window since user space last swapped the map out (summarize on). The service port is the
 * remote port of an outbound connection and the local port of an inbound one: the other
 * side's port is ephemeral, and would make an entry per connection. */
struct tcp_summary_key {
	__u32 pid;
	__u8 direction;
	__u8 _pad;
	__u16 family;
	__u16 port;
	__u16 _pad2;
	__u8 addr[16]; /* the remote address */
};

struct tcp_summary {
	__u64 first_ns; /* CLOCK_BOOTTIME: the earliest establishment */
	__u64 last_ns;  /* CLOCK_BOOTTIME: the latest close */
	__u64 cgroup_id;
	__u64 connections;
	__u64 bytes_sent;
	__u64 bytes_received;
	__u32 uid;
	__u32 _pad;
	__u8 local_addr[16];
	char comm[COMM_BYTES];
};

#endif
