#!/usr/bin/env bash
# Regenerates bpf/include/vmlinux.h from the running kernel's BTF. The header is committed so
# that building the BPF programs needs no kernel headers; the programs use CO-RE, so a header
# taken from one kernel works on others. Needs bpftool (Debian package "bpftool").
#
# Usage: scripts/gen-vmlinux.sh [BTF file, default /sys/kernel/btf/vmlinux]
set -euo pipefail

btf="${1:-/sys/kernel/btf/vmlinux}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/bpf/include/vmlinux.h"

command -v bpftool >/dev/null 2>&1 || { echo "gen-vmlinux: bpftool not found (apt-get install bpftool)" >&2; exit 1; }
[ -r "$btf" ] || { echo "gen-vmlinux: cannot read BTF at $btf (kernel built without CONFIG_DEBUG_INFO_BTF?)" >&2; exit 1; }

tmp="$(mktemp "$out.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
bpftool btf dump file "$btf" format c >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "gen-vmlinux: wrote $out from $btf" >&2
