/*
 * story.h — what every real-server story does again and again, said once:
 * start the source and the target, run pg_dbmigrator (or pgbench) and take
 * its end (exit code, events on stdout, log on stderr), wait for a stage in
 * its log, kill it as a crash would, count rows, say that the tool left
 * nothing behind, and run the suite.
 *
 * The stories then read as what an operator lives through: start the
 * migration, wait until it is caught up, let the application write, press
 * Ctrl+C, look at both sides.
 *
 * Owns: nothing past the calls but what a story_servers holds. Never:
 * decides what a story checks (the stories assert; these helpers only fail
 * a test when a step itself could not be done).
 */
#ifndef STORY_H
#define STORY_H

#include <check.h>
#include <stdint.h>

#include "pgtest.h"

/* The source conf of the online stories: room for the tool's slots and walsenders. */
#define STORY_SOURCE_CONF "max_replication_slots = 10\nmax_wal_senders = 10\n"

/* The two servers of a suite, and a superuser session on each one's postgres database. */
typedef struct story_servers
{
	pgt_cluster src;   /* the source */
	pgt_cluster tgt;   /* the target */
	PGconn *src_admin; /* owned, closed by story_servers_stop */
	PGconn *tgt_admin; /* owned, closed by story_servers_stop */
} story_servers;

/* Start the source with src_conf (may be NULL), the target as it comes; connect the admins. */
void story_servers_start(story_servers *sv, const char *src_conf);

/* Close the admin sessions and stop both servers. */
void story_servers_stop(story_servers *sv);

/*
 * How the tool reaches database db: the source as postgres (it replicates),
 * the target as "app" (a NOSUPERUSER role owning its database, as on a
 * managed service). Both strings are size bytes.
 */
void story_connstrs(const story_servers *sv, const char *db, char *src, char *tgt, size_t size);

/* Database db dropped if there and created on both servers, owned by "app" on each. */
void story_app_databases(const story_servers *sv, const char *db);

/*
 * Database db made anew on both servers (the target's owned by "app"), its
 * connection strings into src and tgt (size bytes, as story_connstrs), and a
 * superuser session to it on each side into *s and *t.
 */
void story_fresh_sides(const story_servers *sv, const char *db, char *src, char *tgt, size_t size,
                       PGconn **s, PGconn **t);
/* The same, the source's database in encoding (C locale, from template0; NULL: the default). */
void story_fresh_sides_in(const story_servers *sv, const char *db, const char *encoding, char *src,
                          char *tgt, size_t size, PGconn **s, PGconn **t);

/*
 * Start pg_dbmigrator with the words of args, then of more (each
 * NULL-terminated; more may be NULL), and env (may be NULL).
 */
void story_tool_start(pgt_proc *p, const char *const args[], const char *const more[],
                      const char *const env[]);

/*
 * Start `pg_dbmigrator --mode mode --source src --target tgt --dump-path dump`
 * and the words of more (NULL-terminated, may be NULL), with env (may be NULL).
 */
void story_migrate(pgt_proc *p, const char *mode, const char *src, const char *tgt,
                   const char *dump, const char *const more[], const char *const env[]);

/*
 * The end of a run: its stdout read until it closes and its exit waited
 * for, both within timeout_s (then SIGKILL, exit -1). Its exit code; stdout
 * and stderr into *out and *err (malloc'd; either may be NULL: dropped).
 */
int story_finish(pgt_proc *p, int timeout_s, char **out, char **err);

/* Ctrl+C to a running online migration, then its end: it must exit 0 (out and err as story_finish). */
void story_cut_over(pgt_proc *p, int timeout_s, char **out, char **err);

/* story_tool_start, then story_finish. */
int story_run(const char *const args[], const char *const env[], int timeout_s, char **out,
              char **err);

/* kill -9, as a crash would: the run is gone and reaped. */
void story_kill_9(pgt_proc *p);

/*
 * Wait up to seconds for needle in the run's log; fail the test with the end
 * of the log if it never comes, or as soon as the run ends without it (the
 * run killed, so that a failed story leaves none behind).
 */
void story_expect(const pgt_proc *p, const char *needle, int seconds);

/* The end of a long text (Check's messages have a size limit). */
const char *story_tail(const char *text);

/* Start pgbench with args (NULL-terminated) and env (may be NULL). */
void story_pgbench_start(pgt_proc *p, const char *const args[], const char *const env[]);

/* pgbench ends with exit 0 within timeout_s; fails the test with its stderr otherwise. */
void story_pgbench_done(pgt_proc *p, int timeout_s);

/* pgbench -i -q -s 1 on connstr, done within 120 s. */
void story_pgbench_init(const char *connstr);

/* A scratch file named name holding text (a pgbench script); its path into buf. */
const char *story_file(const char *name, const char *text, char *buf, size_t size);

/* SELECT count(*) FROM from (a table, with a WHERE if wanted). */
long story_count(PGconn *conn, const char *from);

/* Every replication slot on the source cluster dropped (their walsenders first). */
void story_drop_slots(const pgt_cluster *src);

/* No replication slot and no publication on the source s. */
void story_assert_source_clean(PGconn *s);

/*
 * Nothing of the tool's on either side: no slot on s, exactly publications
 * on s (comma-separated, "" for none), no _pg_dbmigrator schema on t.
 */
void story_assert_nothing_left(PGconn *s, PGconn *t, const char *publications);

/* A publication of tables (WITH with, may be NULL) and a pgoutput slot, both named name. */
void story_publish(PGconn *src, const char *name, const char *tables, const char *with);

/*
 * Run `pg_dbmigrator bench` on slot and publication name from src to tgt up
 * to upto (NULL: none), with extra (may be NULL); its end as story_finish.
 */
int story_bench(const char *src, const char *tgt, const char *name, const char *upto,
                const char *const extra[], char **out, char **err);

/* A monotonic clock, in microseconds. */
int64_t story_now_us(void);

/* Sort n values in ascending order (latencies, for percentiles). */
void story_sort(double *values, size_t n);

/* Add test to tc unless the environment variable only_env names a part its name lacks. */
void story_add(TCase *tc, const TTest *test, const char *only_env);

/* How a suite of stories runs: one case, its servers, its fixtures, its time limit. */
typedef struct story_plan
{
	const char *suite;      /* the suite's name */
	const char *tcase;      /* its one case's name */
	int timeout_s;          /* each story's limit */
	story_servers *servers; /* started before the stories and stopped after them, or NULL */
	const char *src_conf;   /* the source's conf for story_servers_start (may be NULL) */
	SFun setup, teardown;   /* once around the stories, inside the servers' life (may be NULL) */
	SFun before, after;     /* around each story (may be NULL) */
	const char *only_env;   /* a variable that picks stories by a part of their name, or NULL */
} story_plan;

/*
 * The suite of stories (NULL-terminated) as plan says; plan is borrowed
 * until the suite has run (Check's fixtures take no argument).
 */
Suite *story_suite(const story_plan *plan, const TTest *const stories[]);

/* Run the suite (CK_NORMAL); EXIT_SUCCESS when every test passed. */
int story_run_suite(Suite *s);

#endif /* STORY_H */
