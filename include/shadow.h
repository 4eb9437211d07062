/*
 * shadow.h — `pg_dbmigrator shadow`: refresh a live target from a source
 * through shadow tables and an atomic swap, keep the replaced tables as a
 * backup, roll back to one, verify and drop old ones.
 *
 * The shadow tables live in a schema of their own, _pgdbm_shadow_<ts>, with
 * the live tables' names, indexes and constraints; the swap moves each live
 * table into _pgdbm_backup_<ts> and each shadow table into the live schema
 * (ALTER TABLE ... SET SCHEMA, one catalog update each) in one transaction.
 * The migration's state is a JSON file <state-dir>/shadow-<ts>.json (mode
 * 0600, written atomically).
 *
 * Owns: the connections and the state it opens during a call; with --online,
 * the migration's slot and publication on the source. Never: writes to the
 * source (but to create and drop that slot and publication), touches a live
 * table outside the swap's transaction but to add and drop the sync triggers
 * of preserved tables, prints a password.
 */
#ifndef SHADOW_H
#define SHADOW_H

#include <stdbool.h>

#include "pgdbm_attr.h"

#define SHADOW_MAX_LIST 64
#define SHADOW_MAX_JOBS 64

typedef struct shadow_opts
{
	const char *source;                         /* borrowed conninfo; prepare and start only */
	const char *dest;                           /* borrowed conninfo of the live target */
	const char *state_dir;                      /* borrowed: where the state files are */
	const char *schema;                         /* borrowed: the live schema (default public) */
	const char *preserved[SHADOW_MAX_LIST + 1]; /* borrowed, NULL-terminated */
	const char *keep[SHADOW_MAX_LIST + 1];      /* rollback --keep-tables, NULL-terminated */
	const char *timestamp;                      /* borrowed; NULL: the one the command finds */
	const char *before;                         /* borrowed: cleanup --before DATE */
	bool latest;                                /* rollback --latest */
	bool dry_run;
	bool json;
	int lock_timeout_ms; /* the swap's lock_timeout per try */
	int lock_tries;      /* tries before the swap gives up */
	int jobs;            /* prepare: tables copied at once (1..SHADOW_MAX_JOBS) */
	/*
	 * prepare --online: copy at a logical slot's exported snapshot, then
	 * stream the source's changes into the shadow until Ctrl+C or the swap
	 * (shadowstream.h); the swap drains the slot first and drops it after.
	 */
	bool online;
	bool then_swap; /* start --online: prepare does not stream, the swap drains at once */
} shadow_opts;

/* Exit codes are cmd.h's. Each prints its own one-line errors on stderr. */
PGDBM_MUST_CHECK int shadow_prepare(const shadow_opts *o);
PGDBM_MUST_CHECK int shadow_swap(const shadow_opts *o);
PGDBM_MUST_CHECK int shadow_rollback(const shadow_opts *o);
PGDBM_MUST_CHECK int shadow_list(const shadow_opts *o);
PGDBM_MUST_CHECK int shadow_status(const shadow_opts *o);
PGDBM_MUST_CHECK int shadow_cleanup(const shadow_opts *o);
PGDBM_MUST_CHECK int shadow_verify(const shadow_opts *o);

/*
 * Before cleanup --before: the online migrations cleanup drops that were
 * never swapped (preparing, prepared) lose their slot and publication on the
 * source (o->source; a streaming prepare is stopped first), which would
 * otherwise hold the source's WAL. EXIT_USAGE when one needs --source.
 */
PGDBM_MUST_CHECK int shadow_online_release(const shadow_opts *o);

#endif /* SHADOW_H */
