/*
 * migrate_internal.h — what the phases of a migration share: the run
 * context (mig) and each phase module's entry points. The phases are
 * src/preflight.c, snapshot.c, dumprun.c, fastrestore.c, guardrun.c,
 * follow.c, cutover.c, sequences.c, finish.c, runtoken.c, dryrun.c and
 * wholeserver.c; migrun.c walks them; cmd_migrate.c parses the command line
 * and calls migrun_run. Kept out of include/ as pg_dump keeps
 * pg_backup_archiver.h apart from its public headers: nothing outside the
 * migrate command needs it.
 *
 * Owns: nothing itself. Never: included outside the migrate command's files
 * and their unit tests.
 */
#ifndef MIGRATE_INTERNAL_H
#define MIGRATE_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "apply.h"
#include "child.h"
#include "cli.h"
#include "conninfo.h"
#include "dumprestore.h"
#include "events.h"
#include "guard.h"
#include "migopts.h"
#include "pgdbm_attr.h"
#include "pgdbm_schema.h"
#include "pgsession.h"
#include "pipeline.h"
#include "receiver.h"
#include "relcache.h"
#include "replconn.h"
#include "resume.h"
#include "scope.h"
#include "srcplan.h"
#include "ring.h"
#include "stream.h"
#include "strbuf.h"
#include "tablecopy.h"
#include "verify.h"

/* The run context of one migration: one per run, on the runner's stack. */
typedef struct mig
{
	migopts o;
	conninfo src_ci, tgt_ci;
	PGconn *src, *tgt; /* owned: regular connections */
	replconn rc;       /* online: the replication connection */
	replslot slot;
	bool created_slot, created_publication;
	srcplan plan;                     /* online: publications, keyless tables (srcplan_free) */
	bool created_keyless_publication; /* plan.keyless_publication is ours to drop */
	bool restart;                     /* nothing can be resumed: drop what we made, start over */
	char halt_msg[1024];              /* why the stream was halted (with restart) */
	int src_version;
	char bindir[512];
	/* streaming */
	receiver *rcv;
	applier *app;
	stream_opts *so;
	int64_t next_poll_ms, start_ms, cutover_ms;
	bool caught_up, cutover, timed_out;
	pgo_lsn cutover_lsn;
	pgo_lsn stream_start_lsn; /* where streaming started: everything before is on the target */
	/* resume */
	char token_path[1100];
	resume_token token;
	bool have_token;
	bool wrote_token; /* this run saved the token (so it may remove it) */
	bool slot_gone;   /* the slot was dropped or invalidated under us: nothing to resume */
	int ntables;      /* tables in scope, for progress */
	/* the guard (guard.h): triggers and foreign keys too when the apply cannot use replica */
	bool guard_full;
	bool guard_applied; /* this run put the guard in force (or found it in force) */
	/* --copy-method direct (copyrun.c) */
	tablecopy_table *copy_tables; /* owned (tablecopy_free_tables): the leaves the Copy phase
	                                 carries, described at the Dump */
	int ncopy_tables;
	PGconn *snap_conn; /* owned: offline, the session whose exported snapshot
	                      (slot.snapshot) the dump and the copy read in */
	bool clean_target; /* the Copy phase's schema pass drops what is there first */
} mig;

/* What the comparison before Complete found. */
typedef enum mig_verified
{
	MIG_VERIFY_OFF,         /* --verify off */
	MIG_VERIFY_EQUAL,       /* source and target are equal */
	MIG_VERIFY_DIFFERENCES, /* they differ (named in the Verify event) */
	MIG_VERIFY_UNVERIFIED   /* the comparison could not be made */
} mig_verified;

/*
 * How late a commit's row-change counters may reach pg_stat_user_tables: a
 * PostgreSQL 15+ backend that reported less than a second ago and then goes
 * idle reports again only after PGSTAT_IDLE_INTERVAL (10 s).
 */
#define MIG_STATS_DELAY_MS(version) ((version) >= 150000 ? 11000 : 2000)

/* ---- mig.c: signal flags and SQL helpers */
extern volatile sig_atomic_t mig_signals; /* SIGINT/SIGTERM received */
extern volatile sig_atomic_t mig_abort;   /* a second one: stop now */
extern volatile sig_atomic_t mig_halt;    /* always set: stream_opts.stop for a halt */

/* Fail a check: one Validate event at level error; always false. */
bool __attribute__((format(printf, 2, 0)))
mig_check_failed(const char *check, const char *fmt, const char *arg);
/* A regular connection (pgsession) in UTF8; NULL with "cannot connect to the <which>: ...". */
PGDBM_MUST_CHECK PGconn *mig_connect(const char *connstr, const char *which, char *errbuf,
                                     size_t errlen);
/* One value of a query, copied into buf; false with the server's message. */
PGDBM_MUST_CHECK bool mig_value(PGconn *c, const char *sql, char *buf, size_t size, char *errbuf,
                                size_t errlen);
PGDBM_MUST_CHECK bool mig_exec(PGconn *c, const char *sql, char *errbuf, size_t errlen);
/* The filters as scope lists (borrowed from m->o, NULL-terminated). */
scope_filters mig_scope(mig *m);
/* The migrated tables as "schema"."table", comma-separated, and their count. */
PGDBM_MUST_CHECK bool mig_tables(mig *m, strbuf *out, int *count, char *errbuf, size_t errlen);

/* ---- preflight.c: Validate */
PGDBM_MUST_CHECK bool preflight_run(mig *m, char *errbuf, size_t errlen);

/* ---- snapshot.c: PrepareSnapshot, or re-attach on --resume */
PGDBM_MUST_CHECK bool snapshot_prepare(mig *m, char *errbuf, size_t errlen);
PGDBM_MUST_CHECK bool snapshot_reattach(mig *m, char *errbuf, size_t errlen);
PGDBM_MUST_CHECK bool snapshot_reattach_after_cutover(mig *m, char *errbuf, size_t errlen);

/* ---- dumprun.c: Dump and Restore */
PGDBM_MUST_CHECK bool dumprun_dump(mig *m, char *errbuf, size_t errlen);
PGDBM_MUST_CHECK bool dumprun_restore(mig *m, char *errbuf, size_t errlen);
/* --force-clean: remove a dump directory (or only check it may be removed). */
PGDBM_MUST_CHECK bool dumprun_remove_dump(const char *path, bool check_only, char *errbuf,
                                          size_t errlen);
/* Do pg_dump and pg_restore report progress (their --verbose output, on a terminal)? */
bool dumprun_progress(const mig *m);
/* What pg_dump reads beyond the options into *src (caller-allocated; borrows from m). */
void dumprun_source(const mig *m, dumprestore_source *src);
/*
 * Run pg_dump/pg_restore (argv) as a child for stage ("Dump" or "Restore"),
 * password in its environment; *warned when --allow-restore-errors accepted
 * its errors.
 */
PGDBM_MUST_CHECK bool dumprun_child(mig *m, const char *stage, const char *const *argv,
                                    const char *password, bool *warned, char *errbuf,
                                    size_t errlen);

/* ---- copyrun.c: --copy-method direct */
/*
 * At the Dump: offline, export the snapshot the dump and the copy share;
 * describe the tables whose rows the Copy phase carries (m->copy_tables).
 */
PGDBM_MUST_CHECK bool copyrun_prepare(mig *m, char *errbuf, size_t errlen);
/* The Copy phase: the schema restored (pre-data), the rows copied, the snapshot released. */
PGDBM_MUST_CHECK bool copyrun_copy(mig *m, char *errbuf, size_t errlen);
/* What copyrun_prepare holds, released (safe twice). */
void copyrun_release(mig *m);

/* ---- fastrestore.c: --fast-restore-settings */
PGDBM_MUST_CHECK bool fastrestore_set(mig *m, char *errbuf, size_t errlen);
/* Put back what a settings file records; true when there is none. */
PGDBM_MUST_CHECK bool fastrestore_put_back(mig *m, char *errbuf, size_t errlen);

/* ---- guardrun.c: the guard as phases */
PGDBM_MUST_CHECK bool guardrun_apply(mig *m, char *errbuf, size_t errlen);
PGDBM_MUST_CHECK bool guardrun_undo(mig *m, const char *stage, char *errbuf, size_t errlen);
PGDBM_MUST_CHECK bool guardrun_validate(mig *m, const char *stage, char *errbuf, size_t errlen);

/* ---- follow.c: StreamApply until the cutover; an exit code (cmd.h) */
PGDBM_MUST_CHECK int follow_run(mig *m, char *errbuf, size_t errlen);

/* ---- cutover.c: the stream loop's tick (arg is the mig) */
void cutover_tick(void *arg);

/* ---- sequences.c: SequenceSync (warnings only) */
void sequences_sync(mig *m);

/* ---- finish.c: cleanup and verification */
void finish_cleanup(mig *m, bool drop_slot, bool drop_publication, bool drop_progress);
const char *finish_verified_name(mig_verified v);
mig_verified finish_verify(mig *m, int *differences, char *errbuf, size_t errlen);

/* ---- runtoken.c: the resume token of the run */
PGDBM_MUST_CHECK bool runtoken_save(mig *m, resume_stage stage, char *errbuf, size_t errlen);
PGDBM_MUST_CHECK bool runtoken_check(mig *m, char *errbuf, size_t errlen);
void runtoken_force_clean(mig *m);

/* ---- dryrun.c: the plan (migplan.h), after Validate; an exit code */
struct migplan;
PGDBM_MUST_CHECK int dryrun_print(mig *m, const struct migplan *plan, char *errbuf, size_t errlen);

/* ---- wholeserver.c: --all-databases; an exit code */
PGDBM_MUST_CHECK int wholeserver_run(mig *m, int argc, char **argv, char *errbuf, size_t errlen);

/* ---- migrun.c: one migration, parsed options in m->o and conninfos in m; an exit code */
PGDBM_MUST_CHECK int migrun_run(mig *m, int argc, char **argv);

#endif
