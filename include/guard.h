/*
 * guard.h — keeps the target's own triggers, cascades and identity columns
 * out of the way of the apply, and puts them back.
 *
 * The apply writes the source's changes row by row. PostgreSQL's own apply
 * worker runs with session_replication_role = replica so that the target's
 * user triggers and foreign-key actions do not fire a second time; a target
 * role that may not SET it (NOSUPERUSER without GRANT SET ON PARAMETER
 * session_replication_role) gets the guard instead: for the migrated tables,
 * every enabled user trigger is disabled and every foreign key dropped while
 * the stream runs. In every case GENERATED ALWAYS identity columns become BY
 * DEFAULT (an applied UPDATE or INSERT sets the column's value), and the
 * triggers that fire in replica mode too (ENABLE ALWAYS, ENABLE REPLICA) are
 * disabled.
 *
 * Every change is recorded in _pg_dbmigrator.guard_ledger on the target in
 * the same transaction as the change itself, so that a crash never loses
 * the record. The undo reads only the ledger and is idempotent: triggers go
 * back to their exact state (O, A or R), identity columns to ALWAYS, foreign
 * keys are re-added NOT VALID (no scan while the application waits), and
 * guard_validate then validates those the source had validated, under SHARE
 * UPDATE EXCLUSIVE (writes go on). After guard_validate the ledger is empty.
 *
 * Owns: nothing past a call. Never: touches a table outside the list it is
 * given, or changes something without recording it first in the ledger.
 */
#ifndef GUARD_H
#define GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "pgdbm_attr.h"
#include "strbuf.h"

/* What a guard call changed (or, for guard_plan, would change). */
typedef struct guard_counts
{
	int triggers;     /* disabled / enabled again */
	int foreign_keys; /* dropped / re-added NOT VALID */
	int identities;   /* ALWAYS -> BY DEFAULT / back to ALWAYS */
	int validated;    /* guard_validate: foreign keys validated */
} guard_counts;

/* One ledger row: a change the guard made and how to undo it. */
typedef struct guard_item
{
	const char *kind;   /* borrowed: "trigger", "foreign_key" or "identity" */
	const char *rel;    /* borrowed: the table, quoted: "schema"."table" */
	const char *name;   /* borrowed: trigger, constraint or column name, unquoted */
	const char *detail; /* borrowed: trigger: its tgenabled (O, A, R); foreign key: its
	                       definition without NOT VALID; identity: "a" */
	bool validated;     /* foreign key: validated on the source */
} guard_item;

/*
 * May the role of conn SET session_replication_role = replica (superuser, or
 * GRANT SET ON PARAMETER on PostgreSQL 15+)? Tried in a transaction rolled
 * back. False (with the server's message) only when conn fails.
 */
PGDBM_MUST_CHECK bool guard_can_replica(PGconn *conn, bool *can, char *errbuf, size_t errlen);

/*
 * What the guard would change on conn for tables (quoted names): all
 * enabled triggers and foreign keys only when full. Read-only (the source for a
 * --dry-run plan, the target otherwise).
 */
PGDBM_MUST_CHECK bool guard_plan(PGconn *conn, const char *const *tables, int ntables, bool full,
                                 guard_counts *plan, char *errbuf, size_t errlen);

/*
 * Put the guard in force on tgt for tables (quoted names): identity columns
 * and ALWAYS/REPLICA triggers always, every trigger and foreign key when
 * full. Idempotent: what is already
 * changed is not listed again, and the ledger keeps its first record.
 */
PGDBM_MUST_CHECK bool guard_apply(PGconn *tgt, const char *const *tables, int ntables, bool full,
                                  guard_counts *done, char *errbuf, size_t errlen);

/*
 * Undo what the ledger on tgt records, each step with its ledger update in
 * one transaction: triggers and identity columns back, foreign keys re-added
 * NOT VALID. Idempotent; nothing to do without a ledger. On a failure the
 * ledger keeps the steps not done and errbuf names the statement.
 */
PGDBM_MUST_CHECK bool guard_undo(PGconn *tgt, guard_counts *done, char *errbuf, size_t errlen);

/*
 * VALIDATE CONSTRAINT each re-added foreign key that the source had
 * validated; the ledger is then empty. Call after guard_undo.
 */
PGDBM_MUST_CHECK bool guard_validate(PGconn *tgt, guard_counts *done, char *errbuf, size_t errlen);

/* Rows in the ledger on tgt (0 without one). */
PGDBM_MUST_CHECK bool guard_pending(PGconn *tgt, int *rows, char *errbuf, size_t errlen);

/*
 * Owners of the source's objects for tables (the tables, their schemas, the
 * functions and types there; not those of extensions) that the role of tgt
 * cannot become: missing on tgt, or tgt's role not a member (USAGE with
 * use_privileges: the guard needs the owners' privileges, not just SET
 * ROLE). Appended to names as "role (why)", comma-separated; *count of them.
 * Not checked for a superuser on tgt (*count 0).
 */
PGDBM_MUST_CHECK bool guard_foreign_owners(PGconn *src, PGconn *tgt, const char *const *tables,
                                           int ntables, bool use_privileges, strbuf *names,
                                           int *count, char *errbuf, size_t errlen);

/*
 * Owners of tables (quoted names) that exist on tgt whose privileges the
 * role of tgt does not have (the guard changes those tables: it must own
 * them), appended to names comma-separated; *count of them. Not checked for
 * a superuser (*count 0).
 */
PGDBM_MUST_CHECK bool guard_unowned_tables(PGconn *tgt, const char *const *tables, int ntables,
                                           strbuf *names, int *count, char *errbuf, size_t errlen);

/*
 * The statement that makes item's change (undo false) or undoes it (undo
 * true) into sql; not_valid: a foreign key re-added NOT VALID. False when
 * out of memory or the item is not one the guard makes.
 */
PGDBM_MUST_CHECK bool guard_sql(const guard_item *item, bool undo, bool not_valid, strbuf *sql);

/* An array literal ({"a","b"}) of n strings, for a text[] parameter. */
PGDBM_MUST_CHECK bool guard_array_literal(const char *const *items, int n, strbuf *out);

#endif /* GUARD_H */
