/*
 * pgdbm_schema.h — the tool's own schema on the target and its objects,
 * named once: the apply progress table and the guard ledger, and the SQL
 * that creates and drops them.
 *
 * Owns: nothing; string-literal macros only, so that callers build their SQL
 * and messages by concatenation (the same text on the wire as if spelled out).
 *
 * Never: includes another header; holds SQL that is not about these objects.
 */
#ifndef PGDBM_SCHEMA_H
#define PGDBM_SCHEMA_H

/* The schema: left out of every scope, dropped at cutover. */
#define PGDBM_SCHEMA "_pg_dbmigrator"

/* One row per slot: how far its changes are applied on the target (apply.c). */
#define PGDBM_PROGRESS PGDBM_SCHEMA ".apply_progress"

/* One row per trigger, foreign key or identity the guard changed (guard.c). */
#define PGDBM_LEDGER PGDBM_SCHEMA ".guard_ledger"

#define PGDBM_SCHEMA_CREATE_SQL "CREATE SCHEMA IF NOT EXISTS " PGDBM_SCHEMA "; "
#define PGDBM_SCHEMA_DROP_SQL   "DROP SCHEMA IF EXISTS " PGDBM_SCHEMA " CASCADE"

/*
 * The progress table: slot, position, when, and whose rows they are (the
 * source system and the run). A table of an older version gets the new
 * columns, NULL: its rows are strangers'.
 */
#define PGDBM_PROGRESS_DDL                                                                \
	PGDBM_SCHEMA_CREATE_SQL                                                               \
	"CREATE TABLE IF NOT EXISTS " PGDBM_PROGRESS " ("                                     \
	" slot_name text PRIMARY KEY, lsn pg_lsn NOT NULL, applied_at timestamptz NOT NULL, " \
	" source_system text, run_lsn pg_lsn); "                                              \
	"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = "     \
	"'" PGDBM_PROGRESS "'::pg_catalog.regclass AND attname = 'run_lsn') THEN "            \
	"ALTER TABLE " PGDBM_PROGRESS " ADD COLUMN IF NOT EXISTS source_system text, "        \
	"ADD COLUMN IF NOT EXISTS run_lsn pg_lsn; END IF; END$$"

/* The guard ledger: what was changed, so that a resumed run can put it back. */
#define PGDBM_LEDGER_DDL                                                          \
	PGDBM_SCHEMA_CREATE_SQL                                                       \
	"CREATE TABLE IF NOT EXISTS " PGDBM_LEDGER " ("                               \
	" kind text NOT NULL CHECK (kind IN ('trigger', 'foreign_key', 'identity'))," \
	" rel text NOT NULL, name text NOT NULL, detail text NOT NULL,"               \
	" validated boolean NOT NULL DEFAULT false,"                                  \
	" readded boolean NOT NULL DEFAULT false,"                                    \
	" changed_at timestamptz NOT NULL DEFAULT now(),"                             \
	" PRIMARY KEY (kind, rel, name))"

#endif /* PGDBM_SCHEMA_H */
