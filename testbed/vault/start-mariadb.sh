#!/bin/bash
# Starts a MariaDB server from Debian's mariadb-server package as a plain process (not the system
# service) with its own data directory, socket and port under STATE_DIR, on loopback, and makes an
# administrator that OpenBao's database secrets engine logs in as (it creates and drops users).
# Installs the package with apt-get when the server binary is missing (needs root).
# Usage: start-mariadb.sh STATE_DIR   -> STATE_DIR/{data,mariadb.sock,mariadb.pid,mariadb.log};
#        prints BERTH_MARIADB_{HOST,PORT,USER,PASSWORD,CLIENT}
# Env: BERTH_MARIADB_PORT (13306, away from a system server's 3306)
set -euo pipefail
mkdir -p "${1:?usage: start-mariadb.sh STATE_DIR}"; STATE=$(cd "$1" && pwd)
PORT=${BERTH_MARIADB_PORT:-13306}
ADMIN=berth_admin
DATA=$STATE/data
SOCK=$STATE/mariadb.sock

if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "start-mariadb.sh: MariaDB is not installed; run as root, or: sudo apt-get install mariadb-server mariadb-client" >&2
        exit 1
    fi
    echo "start-mariadb.sh: installing mariadb-server from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    # The package's own service must not start: this script runs its own server.
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client >&2
fi
PATH=$PATH:/usr/sbin
CLIENT=$(command -v mariadb)

# The administrator's password is made once and kept with the data directory.
[ -s "$STATE/admin-password" ] || (umask 077; head -c 30 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$STATE/admin-password")
PASSWORD=$(cat "$STATE/admin-password")

as_admin() { MYSQL_PWD=$PASSWORD "$CLIENT" --no-defaults -h 127.0.0.1 -P "$PORT" -u "$ADMIN" "$@"; }
healthy() { as_admin -N -e 'SELECT 1' >/dev/null 2>&1; }

if ! healthy; then
    if [ -S "$SOCK" ] && "$CLIENT" --no-defaults --socket="$SOCK" -e 'SELECT 1' >/dev/null 2>&1; then
        : # ours is running, only the administrator is missing (set up below)
    else
        ME=$(id -un)
        if [ ! -d "$DATA/mysql" ]; then
            rm -rf "$DATA"
            # The OS user running this script administers the server through the socket.
            mariadb-install-db --no-defaults --datadir="$DATA" --user="$ME" --auth-root-authentication-method=socket \
                --auth-root-socket-user="$ME" --skip-test-db > "$STATE/install-db.log" 2>&1 \
                || { echo "start-mariadb.sh: mariadb-install-db failed; its log:" >&2; tail -20 "$STATE/install-db.log" >&2; exit 1; }
        fi
        rm -f "$SOCK"
        setsid mariadbd --no-defaults --datadir="$DATA" --socket="$SOCK" --port="$PORT" --bind-address=127.0.0.1 \
            --pid-file="$STATE/mariadb.pid" --log-error="$STATE/mariadb.log" --user="$ME" --skip-name-resolve \
            --innodb-buffer-pool-size=64M --performance-schema=OFF < /dev/null > /dev/null 2>&1 &
        for _ in $(seq 300); do [ -S "$SOCK" ] && "$CLIENT" --no-defaults --socket="$SOCK" -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
        "$CLIENT" --no-defaults --socket="$SOCK" -e 'SELECT 1' >/dev/null 2>&1 \
            || { echo "start-mariadb.sh: MariaDB did not become ready; its log:" >&2; tail -20 "$STATE/mariadb.log" >&2; exit 1; }
    fi
    "$CLIENT" --no-defaults --socket="$SOCK" <<SQL
CREATE USER IF NOT EXISTS '$ADMIN'@'%' IDENTIFIED BY '$PASSWORD';
ALTER USER '$ADMIN'@'%' IDENTIFIED BY '$PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$ADMIN'@'%' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS edxapp;
FLUSH PRIVILEGES;
SQL
    healthy || { echo "start-mariadb.sh: cannot log in as $ADMIN over TCP on 127.0.0.1:$PORT" >&2; exit 1; }
fi
echo "BERTH_MARIADB_HOST=127.0.0.1"
echo "BERTH_MARIADB_PORT=$PORT"
echo "BERTH_MARIADB_USER=$ADMIN"
echo "BERTH_MARIADB_PASSWORD=$PASSWORD"
echo "BERTH_MARIADB_CLIENT=$CLIENT"
