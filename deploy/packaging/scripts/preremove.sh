#!/bin/sh
# crumbs: before the files are removed (Debian prerm remove, RPM %preun on erase), stop and
# disable the units. An upgrade leaves them running (postinstall restarts them).
set -e
case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	for u in crumbs-collect crumbs-enrich crumbs-detect crumbs-sink crumbs-deliver crumbs-up; do
		systemctl disable --now "$u.service" >/dev/null 2>&1 || true
	done
fi
exit 0
