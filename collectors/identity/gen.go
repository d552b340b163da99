package identity

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target amd64,arm64 -type pam_event -type creds_event -type setuid_exec_event -type record_kind -type pam_op identity ../../bpf/identity.bpf.c -- -I../../bpf/include -O2 -g -Wall -Werror
