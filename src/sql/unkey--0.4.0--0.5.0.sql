/* unkey--0.4.0--0.5.0.sql: from release 0.4.0 to 0.5.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION unkey UPDATE TO '0.5.0'" to load this file. \quit

-- the schema must still be ours alone (see unkey._check_schema)
SELECT unkey._check_schema();
