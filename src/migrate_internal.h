/*
 * migrate_internal.h — what the phases of a migration share: the run
 * context (mig) and each phase module's entry points. The phases are
 * src/preflight.c, snapshot.c, dumprun.c, copyrun.c, fastrestore.c,
 * guardrun.c, follow.c, cutover.c, sequences.c, finish.c, runtoken.c,
 * dryrun.c and wholeserver.c; migrun.c walks them (the order and the resume
 * rules are migplan.c's table); cmd_migrate.c parses the command line
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
	bool ddl;                         /* online: DDL replicated (decided at Validate, ddl.h) */
	char ddl_why[512];                /* why not, when --ddl was not given and it cannot be */
	bool restart;                     /* nothing can be resumed: drop what we made, start over */
	char halt_msg[1024];              /* why the stream was halted (with restart) */
	int src_version;
	char bindir[512];
	/* streaming */
	receiver *rcv; /* borrowed from follow_run's pipeline while a stream runs, else NULL */
	applier *app;  /* likewise */
	struct cutover_monitor *monitor; /* borrowed from follow_run while it runs, else NULL */
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
	/* offline, verify on: the source's rows digested as the Copy phase passed them, per
	   leaf, for a verify that reads the target only (owned with their strings:
	   copyrun_release) */
	verify_copied *copied;
	int ncopied;
	/* the post-data the Copy phase left for the Restore phase (a pg_restore --use-list
	   file in the dump directory); "": all of it (as when the Copy phase was resumed past) */
	char postdata_list[1200];
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
/*
 * Where a drain of the source's stream ends: past the commit of every source
 * transaction acknowledged before now, asynchronous ones included (the insert
 * position, flushed by a commit of our own). quitting (may be NULL) stops the
 * wait for the flush. In cutover.c.
 */
PGDBM_MUST_CHECK bool cutover_source_end(PGconn *src, const atomic_bool *quitting, pgo_lsn *out,
                                         char *errbuf, size_t errlen);
/* The filters as scope lists (borrowed from m->o, NULL-terminated). */
scope_filters mig_scope(mig *m);
/* The migrated tables as "schema"."table", comma-separated, and their count. */
PGDBM_MUST_CHECK bool mig_tables(mig *m, strbuf *out, int *count, char *errbuf, size_t errlen);

/* ---- preflight.c: Validate */
PGDBM_MUST_CHECK bool preflight_run(mig *m, char *errbuf, size_t errlen);

/* ---- snapshot.c: PrepareSnapshot, or re-attach on --resume */
PGDBM_MUST_CHECK bool snapshot_prepare(mig *m, char *errbuf, size_t errlen);
/* Drop the DDL capture (ddl.h) from the source if it is there; a warning of phase if it fails. */
void snapshot_ddl_remove(mig *m, const char *phase);
/*
 * Is the source's DDL capture absent, or this run's (its schema's comment
 * names m->o.slot or the slot of this --dump-path's resume token, or nothing:
 * an older version's)? If another migration's,
 * false with its comment in other.
 */
bool snapshot_ddl_ours(mig *m, char *other, size_t otherlen);
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

/*
 * The reconnect budget: --reconnect-max-wait counts from the last progress
 * (WAL received or a target commit past anything before, or a connection
 * that held for the whole window), so a reconnect that succeeds and dies
 * again before getting anywhere does not start the window over.
 */
typedef struct follow_retry
{
	int64_t max_wait_ms;      /* --reconnect-max-wait */
	int backoff_ms;           /* the next wait before a reconnect: 1 s, doubling up to 10 s */
	int64_t last_progress_ms; /* when the stream last got further */
	int64_t attempt_ms;       /* when the current connection started streaming */
	pgo_lsn furthest;         /* the furthest position received or committed */
} follow_retry;

/* The budget at the first connection, which starts streaming at start_lsn at now_ms. */
void follow_retry_init(follow_retry *r, int max_wait_secs, pgo_lsn start_lsn, int64_t now_ms);
/* Has there been no progress for longer than --reconnect-max-wait? */
bool follow_retry_gives_up(const follow_retry *r, int64_t now_ms);
/* The wait before the next reconnect; the one after it is twice as long, up to 10 s. */
int follow_retry_next_backoff(follow_retry *r);
/* A connection that started streaming ended having reached reached (received or committed). */
void follow_retry_attempt_ended(follow_retry *r, pgo_lsn reached, int64_t now_ms);

/* ---- cutover.c: the stream loop's tick (arg is the mig) */

/* What the tick sees: the signals, the clock and where the cutover is. */
typedef struct cutover_view
{
	bool signalled;           /* a first SIGINT/SIGTERM */
	bool aborted;             /* a second one */
	int64_t now_ms;           /* cli_now_ms() */
	int64_t start_ms;         /* when streaming started */
	int max_runtime_secs;     /* --max-runtime-seconds; 0: none */
	bool cutting_over;        /* the cutover's end position is set */
	int64_t cutover_ms;       /* since when */
	int cutover_timeout_secs; /* --cutover-timeout */
	int64_t next_poll_ms;     /* when the lag poll (and the keyless watch) is due */
} cutover_view;

/* What the tick has to do. */
typedef enum cutover_step
{
	CUTOVER_NOTHING,   /* keep streaming */
	CUTOVER_ABORT,     /* a second Ctrl+C: stop, nothing is cut over */
	CUTOVER_BEGIN,     /* read the end position of the cutover, then stream up to it */
	CUTOVER_TIMED_OUT, /* the end position was not reached within --cutover-timeout: stop */
	CUTOVER_NUDGE,     /* cutting over: ask the source for a keepalive (once a second) */
	CUTOVER_POLL       /* the keyless watch, then the lag and CaughtUp events */
} cutover_step;

/* The step for what the tick sees (pure: no clock, no signal, no query of its own). */
cutover_step cutover_decide(const cutover_view *v);

/* A job of the monitor thread. */
typedef enum cutover_job
{
	CUTOVER_JOB_NONE,
	CUTOVER_JOB_POLL, /* the keyless watch, then the source's WAL flush position */
	CUTOVER_JOB_END   /* the cutover's end position (see cutover.c) */
} cutover_job;

/* What a job of the monitor found. */
typedef struct cutover_result
{
	bool ok;           /* it succeeded ... */
	bool halt;         /* ... the keyless watch saw what the stream cannot carry (err) */
	pgo_lsn lsn;       /* ... the flush position (poll) or the end position (end) */
	bool sync_standby; /* ... (poll) the slot's walsender is a synchronous standby of the source */
	int64_t begun_ms;  /* ... when the thread began it */
	char err[1024];    /* ... or why not */
} cutover_result;

/*
 * The monitor: a thread that runs the tick's queries on the source, so that
 * the apply thread never waits for them. The tick asks for one job at a
 * time and takes its result at a later tick. The fields are cutover.c's
 * (pthread and the atomics come with receiver.h).
 */
typedef struct cutover_monitor
{
	pthread_t thread;
	bool started;
	pthread_mutex_t lock; /* guards what follows, never held across a query */
	pthread_cond_t wake;
	bool quit;             /* cutover_monitor_stop: end the thread */
	cutover_job asked;     /* the tick's job, until the thread takes it */
	cutover_job running;   /* the thread's job */
	cutover_job done;      /* the job whose result is in result, until the tick takes it */
	cutover_result result; /* done's */
	atomic_bool quitting;  /* quit, readable without the lock (the flush wait checks it) */
	PGconn *src;           /* borrowed: m->src, the apply thread leaves it alone meanwhile */
	const srcplan *plan;   /* borrowed: m->plan */
	const char *slot;      /* borrowed: m->o.slot */
} cutover_monitor;

/*
 * Start the monitor on m->src for the length of follow_run (m->monitor =
 * mon); until cutover_monitor_stop, nothing else may use m->src.
 */
PGDBM_MUST_CHECK bool cutover_monitor_start(cutover_monitor *mon, mig *m, char *errbuf,
                                            size_t errlen);
/* Stop the monitor: waits for a job that runs (the end position's wait is cut short). */
void cutover_monitor_stop(cutover_monitor *mon, mig *m);

/*
 * Between the SQL catch-up's chunks: how far it has come (source: the
 * source's flushed WAL when the last chunk was asked for; applied: the end
 * of the chunk the applier a was handed), as a Lag event, or on a terminal
 * the status line, as while streaming.
 */
void cutover_catch_up_lag(const mig *m, const applier *a, pgo_lsn source, pgo_lsn applied,
                          const catchup_stats *st);

/* The stream loop's tick (stream_tick_fn): acts on cutover_decide's step. */
stream_action cutover_tick(void *arg, pgo_lsn *endpos);

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
