#!/bin/bash
# Minimal version of the upstream mariadb image's entrypoint: arguments that
# start with '-' are mariadbd options; an empty /var/lib/mysql is initialised
# first (root@localhost, root@127.0.0.1 and root@::1 without a password, like
# the upstream image with MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1); the server
# runs as the mysql user.
set -euo pipefail
if [ "${1:0:1}" = '-' ]; then set -- mariadbd "$@"; fi
if [ "$1" != mariadbd ]; then exec "$@"; fi
datadir=/var/lib/mysql
if [ "$(id -u)" = 0 ]; then chown mysql:mysql "$datadir"; fi
if [ ! -d "$datadir/mysql" ]; then
  mariadb-install-db --datadir="$datadir" --user=mysql --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null
fi
exec "$@" --user=mysql
