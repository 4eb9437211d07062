/*
 * srcplan.h — what an online migration asks of the source, decided before
 * anything is created there: which tables the publications cover, which of
 * them have no replica identity ("keyless": no primary key, identity DEFAULT
 * or NOTHING without an index), whether a publication the operator made can
 * give an exact copy, and which keyless tables get REPLICA IDENTITY FULL with
 * the operator's consent.
 *
 * Keyless tables migrate by default: their inserts and truncates stream
 * through a second publication that does not publish their updates and
 * deletes (so nothing the tool creates ever makes an application's UPDATE or
 * DELETE on them fail), while their update and delete counters
 * (pg_stat_user_tables) are watched: one that rises means the target would
 * differ, and the run must stop before its cutover.
 *
 * Owns: the plan's table list (srcplan_free). Never: creates anything on the
 * source in srcplan_build; waits for a synchronous standby (the caller's
 * source connection runs with synchronous_commit = local).
 */
#ifndef SRCPLAN_H
#define SRCPLAN_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "pgdbm_attr.h"

#define SRCPLAN_ALL_KEYLESS "all-keyless" /* --replica-identity-full all-keyless */

/*
 * A table (pg_class c) without a usable replica identity: UPDATE and DELETE
 * cannot be published; a publication that publishes them makes the
 * application's UPDATE and DELETE of it fail.
 */
#define SRCPLAN_KEYLESS_SQL                                                                     \
	"(c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS (SELECT FROM "               \
	"pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) OR (c.relreplident = " \
	"'i' AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND "       \
	"i.indisreplident)))"

typedef struct srcplan_table
{
	char *name;        /* malloc'd: schema.table as format('%I.%I') gives it */
	bool keyless;      /* no usable replica identity (before set_full) */
	bool owned;        /* the source role may publish and ALTER it */
	bool covered;      /* in the operator's publication (when it exists) */
	bool set_full;     /* keyless, and chosen by --replica-identity-full */
	long long changes; /* n_tup_upd + n_tup_del when planned (before the snapshot) */
	long long updates, deletes;
} srcplan_table;

typedef struct srcplan
{
	srcplan_table *tables; /* malloc'd: every table whose rows the dump copies (leaves), sorted */
	int ntables;
	int nkeyless;      /* keyless tables that are not set_full: published insert-only, watched */
	bool pub_exists;   /* the publication was there already: the operator's, checked */
	bool all_tables;   /* create the main publication FOR ALL TABLES */
	bool track_counts; /* the source counts row changes (else keyless tables cannot be watched) */
	char publication[128];          /* the main publication */
	char keyless_publication[128];  /* the insert-only one ("" when nkeyless == 0) */
	bool stale_main, stale_keyless; /* see srcplan_init */
} srcplan;

/*
 * Read the source and decide: scope is the top-level tables in scope (as
 * scope_list_tables gives them), ri_full the --replica-identity-full names
 * (NULL-terminated; SRCPLAN_ALL_KEYLESS for every keyless table), filtered
 * whether filters narrowed the scope. False with a message naming what to
 * change, and *check the name of the failed check (for the Validate event).
 */
PGDBM_MUST_CHECK bool srcplan_build(srcplan *p, PGconn *src, char *const *scope, int nscope,
                                    const char *publication, const char *const *ri_full,
                                    bool filtered, const char **check, char *errbuf, size_t errlen);

/*
 * Before srcplan_build: publications an earlier run of the tool created and
 * --force-clean is about to drop count as absent (main: the publication,
 * keyless: its insert-only one).
 */
void srcplan_init(srcplan *p, bool stale_main, bool stale_keyless);

/*
 * A resumed run: the tables of the insert-only publication keyless_pub an
 * interrupted run created are watched again, from their counters now.
 */
PGDBM_MUST_CHECK bool srcplan_resume(srcplan *p, PGconn *src, const char *publication,
                                     const char *keyless_pub, char *errbuf, size_t errlen);

/*
 * The keyless tables as one line ("a (1 update, 0 deletes so far), b (...)"):
 * those watched, or (set_full) those getting REPLICA IDENTITY FULL; malloc'd.
 */
PGDBM_MUST_CHECK char *srcplan_keyless_list(const srcplan *p, bool set_full);

/* ALTER TABLE ... REPLICA IDENTITY FULL on the set_full tables. */
PGDBM_MUST_CHECK bool srcplan_set_identity(const srcplan *p, PGconn *src, char *errbuf,
                                           size_t errlen);

/*
 * Create the main publication (unless it exists) and the insert-only one
 * (when there are keyless tables). *created_main / *created_keyless say what
 * was created, also on failure (the caller records them for cleanup).
 */
PGDBM_MUST_CHECK bool srcplan_create_publications(const srcplan *p, PGconn *src, bool *created_main,
                                                  bool *created_keyless, char *errbuf,
                                                  size_t errlen);

/* DROP PUBLICATION IF EXISTS name. */
PGDBM_MUST_CHECK bool srcplan_drop_publication(PGconn *src, const char *name, char *errbuf,
                                               size_t errlen);

/*
 * Compare the keyless tables' update and delete counters with the plan's:
 * 1 (and a message naming the tables and the way out) when one rose or was
 * reset, 0 when none did, -1 when they could not be read (errbuf).
 */
PGDBM_MUST_CHECK int srcplan_watch(const srcplan *p, PGconn *src, char *errbuf, size_t errlen);

/*
 * Would synchronous_standby_names (its value ssn) make a walsender whose
 * application_name is appname a synchronous standby candidate? ('*', or the
 * name, compared case-insensitively, in any of its forms: a list, FIRST n
 * (...), ANY n (...), n (...).)
 */
bool srcplan_sync_standby_matches(const char *ssn, const char *appname);

void srcplan_free(srcplan *p);

#endif /* SRCPLAN_H */
