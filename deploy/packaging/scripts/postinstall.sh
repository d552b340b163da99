#!/bin/sh
# crumbs: after the files are unpacked (Debian postinst configure, RPM %post). The
# configuration is readable by the crumbs user and no one else; systemd learns the units.
# No unit is enabled or started: which ones run depends on the host's role (crumbs-up on
# a single host, crumbs-collect on every watched host, the stages on central ones). An
# upgrade restarts the units that were running.
set -e
case "$1" in
configure | 1 | 2) ;;
*) exit 0 ;;
esac
if [ -d /etc/crumbs ]; then
	chown root:crumbs /etc/crumbs
	chmod 0750 /etc/crumbs
fi
if [ -e /etc/crumbs/crumbs.yaml ]; then
	chown root:crumbs /etc/crumbs/crumbs.yaml
	chmod 0640 /etc/crumbs/crumbs.yaml
fi
for f in /etc/crumbs/crumbs-*.env; do
	[ -e "$f" ] || continue
	chown root:root "$f"
	chmod 0600 "$f"
done
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	if [ "$1" = 2 ] || { [ "$1" = configure ] && [ -n "$2" ]; }; then
		systemctl try-restart crumbs-collect.service crumbs-enrich.service crumbs-detect.service \
			crumbs-sink.service crumbs-deliver.service crumbs-up.service >/dev/null 2>&1 || true
	fi
fi
if [ "$1" = configure ] && [ -z "$2" ] || [ "$1" = 1 ]; then
	echo "crumbs: no unit is enabled. One host: systemctl enable --now crumbs-up;" \
		"several: crumbs-collect on each watched host (configure /etc/crumbs first)."
fi
exit 0
