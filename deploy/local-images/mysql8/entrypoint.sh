#!/bin/bash
# Minimal version of the upstream mysql image's entrypoint: arguments that
# start with '-' are mysqld options; an empty /var/lib/mysql is initialised
# first (`--initialize-insecure`: root@localhost without a password; MySQL
# maps a loopback TCP client to localhost); the server runs as mysql.
set -euo pipefail
if [ "${1:0:1}" = '-' ]; then set -- mysqld "$@"; fi
if [ "$1" != mysqld ]; then exec "$@"; fi
datadir=/var/lib/mysql
if [ "$(id -u)" = 0 ]; then chown mysql:mysql "$datadir"; fi
if [ ! -f "$datadir/mysql.ibd" ]; then
  mysqld --no-defaults --basedir=/usr/local/mysql --datadir="$datadir" --user=mysql \
    --initialize-insecure --skip-log-bin >/dev/null 2>&1 ||
    { echo "mysqld --initialize-insecure failed" >&2; exit 1; }
fi
exec "$@" --basedir=/usr/local/mysql --datadir="$datadir" --user=mysql
