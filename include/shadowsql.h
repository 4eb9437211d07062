/*
 * shadowsql.h — the pure half of `pg_dbmigrator shadow`: the names of the
 * shadow and backup schemas, the statements that keep a preserved table's
 * shadow in step and that move tables between schemas, and the migration's
 * state as JSON (written and read back).
 *
 * Owns: nothing past the calls (the caller allocates every struct and
 * buffer). Never: talks to a server, reads or writes files, prints.
 */
#ifndef SHADOWSQL_H
#define SHADOWSQL_H

#include <stdbool.h>
#include <stddef.h>

#include "pgdbm_attr.h"
#include "strbuf.h"

#define SHADOWSQL_MAX_TABLES 512
#define SHADOWSQL_MAX_SEQS   512
#define SHADOWSQL_NAME       64 /* NAMEDATALEN */
#define SHADOWSQL_TS         15 /* YYYYMMDDHHMMSS and the NUL */

/*
 * The table in the shadow schema where the sync triggers note a write they
 * could not carry over (the application's write itself goes through): a swap
 * refuses while it has a row.
 */
#define SHADOWSQL_SYNC_ERRORS "_pgdbm_sync_errors"

/* One table of a migration, and its manifest entry once it is a backup. */
typedef struct shadowsql_table
{
	char name[SHADOWSQL_NAME]; /* in the live schema */
	bool preserved;            /* the shadow holds the target's own rows, kept in step */
	long long rows;            /* manifest: rows of the backup, -1 before the swap */
	char sum[33];              /* manifest: md5 over the rows' md5s in order, "" before */
} shadowsql_table;

/* A sequence's value read from the source at prepare, set on the target at the swap. */
typedef struct shadowsql_seq
{
	char name[SHADOWSQL_NAME]; /* in the live schema */
	long long value;
	bool called; /* is_called of the source's sequence */
} shadowsql_seq;

/*
 * A migration: named by its timestamp. Phases: "preparing", "prepared",
 * "swapping", "swapped", "rolled-back", "cleaned".
 */
typedef struct shadowsql_state
{
	char ts[SHADOWSQL_TS];
	char phase[16];
	char schema[SHADOWSQL_NAME]; /* the live schema */
	char origin[16];             /* "prepare" or "rollback" (a rollback's replaced tables) */
	int ntables;
	shadowsql_table tables[SHADOWSQL_MAX_TABLES];
	int nseqs;
	shadowsql_seq seqs[SHADOWSQL_MAX_SEQS];
	/*
	 * prepare --online (written only when slot is set): the source's logical
	 * slot and publication (one name), the source's system identifier and the
	 * slot's consistent point (whose progress row on the target is this
	 * run's), and the process streaming into the shadow (0: none).
	 */
	char slot[SHADOWSQL_NAME];
	char source_system[32];
	char consistent_lsn[32];
	long long pid;
} shadowsql_state;

/* The schema a migration's shadow tables live in: _pgdbm_shadow_<ts>. */
void shadowsql_shadow_schema(const char *ts, char *buf, size_t size);

/* The schema a migration's replaced tables are kept in: _pgdbm_backup_<ts>. */
void shadowsql_backup_schema(const char *ts, char *buf, size_t size);

/* Whether ts is 14 digits (YYYYMMDDHHMMSS). */
bool shadowsql_ts_valid(const char *ts);

/*
 * A date as the user writes it for --before (2026-12-02, 2026-12-02T10:30,
 * 2026-12-02 10:30:15 or 14 digits) as a timestamp key, missing parts 0.
 * False when it is not one.
 */
PGDBM_MUST_CHECK bool shadowsql_date_key(const char *date, char out[SHADOWSQL_TS]);

/* Append a quoted SQL identifier. */
PGDBM_MUST_CHECK bool shadowsql_ident(strbuf *sb, const char *name);

/*
 * The function and trigger that carry every write to live.table into
 * shadow.table (row triggers keyed by the primary key columns keys, and a
 * TRUNCATE trigger). The function runs as its owner, so an application
 * role that cannot see the shadow schema still writes; a write it cannot
 * carry over is noted in shadow.SHADOWSQL_SYNC_ERRORS, never refused.
 */
PGDBM_MUST_CHECK bool shadowsql_sync_sql(strbuf *sb, const char *live, const char *shadow,
                                         const char *table, const char *const keys[], int nkeys,
                                         const char *ts);

/* The name of the sync trigger of migration ts (on each preserved live table). */
void shadowsql_trigger_name(const char *ts, char *buf, size_t size);

/* ALTER TABLE from.table SET SCHEMA to; */
PGDBM_MUST_CHECK bool shadowsql_move_sql(strbuf *sb, const char *from, const char *table,
                                         const char *to);

/* A text[] literal of n names: {"a","b\\\"c"} (quotes and backslashes escaped). */
PGDBM_MUST_CHECK bool shadowsql_array_literal(strbuf *sb, const char *const names[], int n);

/* The state as JSON (one object, ends with a newline). */
PGDBM_MUST_CHECK bool shadowsql_state_json(strbuf *sb, const shadowsql_state *st);

/*
 * Read a state back from JSON text. False with a reason in err when the
 * text is not a state this version wrote (nothing is guessed).
 */
PGDBM_MUST_CHECK bool shadowsql_state_parse(const char *text, shadowsql_state *st, char *err,
                                            size_t errlen);

/* The table named name in st, or NULL. */
shadowsql_table *shadowsql_state_table(shadowsql_state *st, const char *name);

/*
 * What must follow the tables in an exchange (the swap and the rollback),
 * read from the target's catalog: one part per kind of object, each a
 * SELECT of (phase, statements). Phase 1 runs before the tables move, 3
 * after, 4 after 3. The parameters: $1 the tables (text[]), $2 the live
 * schema, $3 the schema the in-tables come from, $4 the preserved tables
 * (text[]). Read it with search_path = $2.
 */
typedef struct shadowsql_around
{
	const char *what; /* static: what the part carries, for people */
	const char *sql;  /* static: the part's SELECT */
} shadowsql_around;

size_t shadowsql_around_count(void);
/* Part i (NULL past the end). */
const shadowsql_around *shadowsql_around_part(size_t i);
/* The whole query: every part, UNION ALL, ORDER BY the phase. */
PGDBM_MUST_CHECK bool shadowsql_around_sql(strbuf *sb);

#endif /* SHADOWSQL_H */
