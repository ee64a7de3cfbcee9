EXTENSION = unkey
EXTVERSION = 0.5.0

MODULE_big = unkey
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))
# The install script is built from one source per subsystem (src/sql/, in
# this order); the upgrade scripts sit beside them, never edited once released
SQL_SOURCES = $(addprefix src/sql/,utils.sql keys.sql credits.sql permissions.sql \
	ratelimit.sql lifecycle.sql events.sql vault.sql gateway.sql v2.sql citus.sql privileges.sql)
DATA_built = src/sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = $(filter-out $(DATA_built),$(wildcard src/sql/$(EXTENSION)--*.sql))
SHLIB_LINK += -lsodium
PG_CFLAGS += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers

# pg_regress keeps its defaults (sql/ and expected/); setup runs first
REGRESS = setup keygen apis keys verify credits refill delete ratelimit permission_query roles_permissions key_read key_update reroll identities migrate audit events vault gateway v2 privileges hijack plaintext citus_lint
# start a private server with the library preloaded (pg_cron's trick; PGXS has no `make check`)
REGRESS_OPTS = --temp-instance=./tmp_check_regress --temp-config=test/unkey.conf \
	--temp-config=./tmp_check_vault/vault.conf

ISOLATION = last_credit verify_delete identity_race credits_update reroll_verify identity_delete
ISOLATION_OPTS = --inputdir=test/isolation --temp-instance=./tmp_check_iso \
	--temp-config=test/unkey.conf --load-extension=unkey

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

EXTRA_CLEAN = tmp_check_regress tmp_check_iso tmp_check_vault output_iso

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# the control file and this Makefile must name the same version
ifneq ($(EXTVERSION),$(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control))
$(error EXTVERSION $(EXTVERSION) does not match default_version in $(EXTENSION).control)
endif

src/sql/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_SOURCES)
	cat $^ > $@

# the regression server's vault root key: random, made for each run, outside its data directory
installcheck: tmp_check_vault/vault.conf
tmp_check_vault/vault.conf:
	rm -rf tmp_check_vault && mkdir -m 700 tmp_check_vault
	(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > tmp_check_vault/root.key)
	echo "unkey.vault_key_file = '$(CURDIR)/tmp_check_vault/root.key'" > $@
.PHONY: tmp_check_vault/vault.conf
