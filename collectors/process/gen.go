package process

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target amd64,arm64 -type exec_event -type fork_event -type exit_event -type event_kind -type exec_flag -type fd_kind process ../../bpf/process.bpf.c -- -I../../bpf/include -O2 -g -Wall -Werror
