#!/bin/sh
# crumbs: after the files are removed (Debian postrm, RPM %postun). Debian's purge removes
# the state crumbs made under /var/lib/crumbs (the spool, the scan baseline, the embedded
# broker's data and its credentials: collectors.spool.dir, collectors.file.state_dir and
# kafka.embedded.data_dir as shipped), then the directory if nothing else is in it; and
# /etc/crumbs when dpkg has removed its configuration files and nothing else is left there. The crumbs
# user stays (Debian policy: files it owned may remain elsewhere). An RPM erase keeps state,
# as RPM packages do.
set -e
case "$1" in
purge)
	rm -rf /var/lib/crumbs/spool /var/lib/crumbs/scan /var/lib/crumbs/kafka
	rmdir /var/lib/crumbs 2>/dev/null || true
	if [ -d /etc/crumbs ]; then
		rmdir --ignore-fail-on-non-empty /etc/crumbs
	fi
	;;
esac
case "$1" in
remove | purge | 0)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
