# test/lib.sh: what the demo and the test command share.
#
# Both run as root on Debian 12: they install what is missing, build and
# install the extension from a copy of the tree owned by the postgres OS user
# (initdb and pg_regress refuse to run as root), and clean up after
# themselves.

set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin
PACKAGES="make gcc postgresql-15 postgresql-server-dev-15 libsodium-dev libipc-run-perl"

# Install the Debian packages that are missing (PACKAGES and any given), and only those
ensure_packages() {
    local missing=()
    for p in $PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# Copy the tree to $1/unkey (owned by postgres), build and install from there
stage_and_install() {
    local dest="$1/unkey" top
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    mkdir -p "$dest"
    tar -C "$top" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
        --exclude='tmp_check*' --exclude=results --exclude=output_iso -cf - . | tar -C "$dest" -xf -
    make -C "$dest" -s PG_CONFIG="$PGBIN/pg_config" >/dev/null
    make -C "$dest" -s PG_CONFIG="$PGBIN/pg_config" install >/dev/null
    chown -R postgres: "$1"
}

# Run a command as the postgres OS user, in directory $1
as_postgres() {
    local dir="$1"; shift
    (cd "$dir" && runuser -u postgres -- env PATH="$PGBIN:$PATH" "$@")
}
