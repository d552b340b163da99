#!/bin/sh
# crumbs: before the files are unpacked (Debian preinst install|upgrade, RPM %pre), the
# system user and group the units run as: /etc/crumbs is root:crumbs. The user is kept when
# the package is removed or purged (files it owned may remain).
set -e
if ! getent group crumbs >/dev/null 2>&1; then
	groupadd --system crumbs
fi
if ! getent passwd crumbs >/dev/null 2>&1; then
	useradd --system --gid crumbs --home-dir /nonexistent --no-create-home \
		--shell /usr/sbin/nologin --comment "crumbs pipeline" crumbs
fi
exit 0
