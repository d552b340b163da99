package network

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target amd64,arm64 -type conn_event -type dns_event -type conn_info -type udp_key -type udp_flow -type tcp_summary_key -type tcp_summary -type net_event_kind -type net_direction -type net_report network ../../bpf/network.bpf.c -- -I../../bpf/include -O2 -g -Wall -Werror -mcpu=v3
