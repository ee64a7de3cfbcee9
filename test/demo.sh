#!/usr/bin/env bash
# test/demo.sh: build, install, start a throwaway cluster and run the demo.
#
# The cluster listens on no TCP port at all (listen_addresses = ''), only on a
# Unix socket in its own temporary directory, so it cannot clash with any
# other server.  It is stopped and removed on exit, whatever happens.
. "$(dirname "$0")/lib.sh"

ensure_packages
work=$(mktemp -d /tmp/unkey-demo.XXXXXX)

# Stop the cluster and remove everything the demo created
cleanup() {
    if [ -f "$work/data/postmaster.pid" ]; then
        as_postgres "$work" pg_ctl -D "$work/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== building and installing unkey"
stage_and_install "$work"

echo "== starting a throwaway cluster in $work"
as_postgres "$work" initdb -D "$work/data" -A trust -U postgres >/dev/null
cat >>"$work/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'unkey'
CONF
as_postgres "$work" pg_ctl -D "$work/data" -l "$work/server.log" -w start >/dev/null

echo "== running the demo"
as_postgres "$work" psql -X -q -v ON_ERROR_STOP=1 -h "$work" -d postgres -f "$work/unkey/test/demo.sql"
echo "== done; the cluster is stopped and removed"
