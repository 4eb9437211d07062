/*
 * shadow_internal.h — what the files of the shadow module share (shadow.c:
 * prepare and swap; shadow_exchange.c: the exchange both the swap and the
 * rollback run; shadow_backup.c: rollback, list, status, cleanup, verify;
 * shadow_common.c: sessions, statements, the state files). Not a public
 * header: nothing outside src/shadow*.c includes it.
 *
 * Errors are printed once, where they happen ("pg_dbmigrator shadow: ..." on
 * stderr); a false/NULL/negative result means it was already said.
 */
#ifndef SHADOW_INTERNAL_H
#define SHADOW_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "events.h"
#include "pgsession.h"
#include "shadow.h"
#include "shadowsql.h"

#define SH_ERR 1024

/* ---- shadow_common.c ---- */

/*
 * Every command's first call: its stage name (a static string, such as
 * "ShadowSwap") and whether its events are JSON lines on stdout (--json,
 * the shape of events.h) or the "pg_dbmigrator shadow: ..." lines on stderr.
 */
void sh_events_init(const shadow_opts *o, const char *stage);
bool sh_json(void);
/* One line for the operator at level ("info", "warning", "error"). */
void sh_say(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A dry run's plan line (stdout, or a ShadowPlan event). */
void sh_plan(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Emit the phase event e (begun with event_begin, fields added) with its line; frees e. */
void sh_event_end(event *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print one error line: "pg_dbmigrator shadow: what: why". */
void sh_error(const char *what, const char *why);
/* A session on conninfo (side names it in the error); NULL after saying why. */
PGconn *sh_connect(const char *uri, pgsession_role role, const char *side);
/* The first line of c's last error message, into msg (size bytes); returns msg. */
const char *sh_server_message(PGconn *c, char *msg, size_t size);
/* Run sql; false after printing the server's message with what (what NULL: silent). */
bool sh_exec(PGconn *c, const char *sql, const char *what);
/* A query with text parameters; NULL (and printed) on failure. The caller clears it. */
PGresult *sh_query(PGconn *c, const char *sql, int n, const char *const *params, const char *what);
/* Whether name is in the NULL-terminated list (NULL: an empty list). */
bool in_list(const char *const *list, const char *name);
/* The current UTC time as YYYYMMDDHHMMSS. */
void sh_now_ts(char out[SHADOWSQL_TS]);
/* A new migration's timestamp: now, later than after and than every state in dir. */
void sh_new_ts(const char *dir, const char *after, char out[SHADOWSQL_TS]);
/* Write the state atomically, mode 0600. */
bool sh_state_save(const char *dir, const shadowsql_state *st);
/* Read the state of migration ts. */
PGDBM_MUST_CHECK bool sh_state_load(const char *dir, const char *ts, shadowsql_state *st);
/* The timestamps of every state in dir, ascending, into ts[] (at most max); their count. */
int sh_state_all(const char *dir, char ts[][SHADOWSQL_TS], int max);
/* The newest state whose phase is one of phases (space-separated); false if none. */
bool sh_state_find(const shadow_opts *o, const char *phases, shadowsql_state *st);
/*
 * The state a command works on: that of --timestamp, else the newest whose
 * phase is one of phases (none: the error said with the state directory
 * when there is none). False after saying why.
 */
PGDBM_MUST_CHECK bool sh_state_pick(const shadow_opts *o, const char *phases, const char *none,
                                    shadowsql_state *st);
/* --before ("now", or a date shadowsql_date_key reads) as a key; false if not a date. */
PGDBM_MUST_CHECK bool sh_before_key(const char *before, char key[SHADOWSQL_TS]);

/* ---- shadow.c ---- */

/* Print a statement for a dry run. */
void sh_show(const char *sql);
/* The schema exists on the target: 1, 0, or -1 (could not tell, said why). */
int sh_schema_exists(PGconn *t, const char *name);

/* ---- shadow_exchange.c ---- */

/* The number of writes the sync triggers could not carry into schema in (-1: unknown). */
long long sh_sync_errors(PGconn *t, const char *in, char *first, size_t size);
/*
 * The exchange with its retries: in one transaction the tables move from
 * schema to out and from in to schema, with what must follow them. A swap
 * (set_sequences) also sets the source's sequence values and refuses when a
 * preserved table's write was not carried. held_ms: the locked time; tries:
 * the try that did it. False: nothing changed (already said why).
 */
PGDBM_MUST_CHECK bool sh_exchange(PGconn *t, const shadow_opts *o, const char *schema,
                                  const char *in, const char *out, const shadowsql_state *st,
                                  const char *const *tables, int ntables, bool set_sequences,
                                  bool drop_in_schema, int64_t *held_ms, int *tries);
/* After an exchange: the foreign keys added NOT VALID are validated (warnings only). */
void sh_validate_fks(PGconn *t, const char *schema);

/* ---- shadow_backup.c ---- */

/* Row count and content sum of schema.table: md5 over the sorted md5s of the rows' text. */
PGDBM_MUST_CHECK bool sh_table_sum(PGconn *t, const char *schema, const char *table,
                                   long long *rows, char sum[33]);
/* The manifest of backup schema bk: rows and sums of every table of st. */
PGDBM_MUST_CHECK bool sh_manifest(PGconn *t, const char *bk, shadowsql_state *st);

#endif /* SHADOW_INTERNAL_H */
