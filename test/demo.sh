#!/usr/bin/env bash
# test/demo.sh: build, install, start a throwaway cluster and run the demo.
#
# The cluster listens on no TCP port at all (listen_addresses = ''), only on a
# Unix socket in its own temporary directory, so it cannot clash with any
# other server.  It is stopped and removed on exit, whatever happens.
#
# Usage: bash test/demo.sh [-o FILE]
#   -o FILE  write what the demo prints (psql's output and errors) to FILE
#            instead of the terminal; test/check.sh uses it to compare the
#            demo with test/demo.out
. "$(dirname "$0")/lib.sh"

output=
while getopts o: opt; do
    case "$opt" in
        o) output="$OPTARG" ;;
        *) echo "usage: bash test/demo.sh [-o FILE]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { echo "usage: bash test/demo.sh [-o FILE]" >&2; exit 2; }

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
# the vault's root key (step 16): 32 random bytes in hex, outside the data directory
(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$work/vault.key")
chown postgres: "$work/vault.key"
cat >>"$work/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'unkey'
unkey.vault_key_file = '$work/vault.key'
CONF
as_postgres "$work" pg_ctl -D "$work/data" -l "$work/server.log" -w start >/dev/null

demo=(psql -X -q -v ON_ERROR_STOP=1 -h "$work" -d postgres -f "$work/unkey/test/demo.sql")
if [ -n "$output" ]; then
    echo "== running the demo, writing its output to $output"
    as_postgres "$work" "${demo[@]}" >"$output" 2>&1
else
    echo "== running the demo"
    as_postgres "$work" "${demo[@]}"
fi
echo "== done; the cluster is stopped and removed"
