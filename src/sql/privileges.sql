/*
 * privileges.sql: nothing in schema unkey is usable by PUBLIC; applications
 * get exactly the grants the README shows
 */

-- functions are executable by PUBLIC by default: take that back from all of them
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA unkey FROM PUBLIC;
-- tables are never read or written directly by applications
REVOKE ALL ON ALL TABLES IN SCHEMA unkey FROM PUBLIC;
