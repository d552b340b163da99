package file

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target amd64,arm64 -type file_event -type file_op -type file_flag -type read_key file ../../bpf/file.bpf.c -- -I../../bpf/include -O2 -g -Wall -Werror
