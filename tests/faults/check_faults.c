/*
 * check_faults.c — the fault matrix: an online migration with writers on the
 * source, a fault injected while it runs, the tool recovers (or stops as it
 * says it will), is resumed when needed, cuts over, and every table on the
 * target equals the source: nothing lost, nothing applied twice (a counter
 * table shows double applies, a log table shows losses and duplicates).
 *
 * The stories:
 *  - the walsender is terminated: the tool reconnects and carries on;
 *  - the target restarts mid-group: reconnect, replay from the progress row;
 *  - the source restarts: reconnect to the slot;
 *  - the network to the source stalls (its walsender stopped with SIGSTOP for
 *    longer than wal_sender_timeout): the silence is noticed, the tool
 *    reconnects once the slot is free; a stalled target only waits;
 *  - kill -9 of the tool in every phase (Validate, PrepareSnapshot, Dump,
 *    Restore, StreamApply, while applying, Cutover, SequenceSync and the
 *    cleanup, Verify), then --resume: it completes;
 *  - the slot is dropped, or invalidated by max_slot_wal_keep_size: a clear
 *    fatal error, exit 1, nothing cut over;
 *  - a column added on the source during apply: stop naming the table, the
 *    column and the fix, nothing acknowledged after; fix it, resume, finish;
 *  - the disk fills while the dump is written: exit 1, a clear error, the
 *    resume token still readable, and --resume after freeing space works;
 *  - the target rejects a row (a constraint the source lacks): stop naming
 *    the relation, the key and the LSN.
 *
 * Modes (environment):
 *  PGDBM_FAULTS_LONG=1      kill -9 runs: 45 (5 per phase) instead of 9;
 *  PGDBM_SOAK_MINUTES=N     soak: pgbench -c 8 for N minutes with faults 1-3
 *                           every PGDBM_SOAK_FAULT_SECS (default 120) seconds,
 *                           RSS and lag after each fault printed (and checked
 *                           to come back); the other stories are skipped;
 *  PGDBM_FAULTS_SEED=N      the random seed (printed either way);
 *  PGDBM_FAULTS_ONLY=text   only the stories whose name contains text.
 */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pgtest.h"
#include "story.h"

#define SOURCE_CONF                                                               \
	"max_replication_slots = 10\nmax_wal_senders = 10\nwal_sender_timeout = 3s\n" \
	"max_wal_size = 64MB\nmin_wal_size = 32MB\n"

static story_servers sv;
static unsigned fault_seed;

/* One migration under test: its databases, writers and tool. */
typedef struct run
{
	char db[64];
	char src[256], tgt[256], dump[512], script[512];
	PGconn *s;      /* source, the test's own session */
	pgt_proc tool;  /* the current pg_dbmigrator */
	pgt_proc write; /* the current pgbench */
	bool writing;
	int clients;
} run;

/* The random seed of this run, said so that it can be repeated. */
static void
seed(void)
{
	const char *seed = getenv("PGDBM_FAULTS_SEED");

	fault_seed = seed && seed[0] ? (unsigned)strtoul(seed, NULL, 10) : (unsigned)time(NULL);
	printf("faults: seed %u (PGDBM_FAULTS_SEED=%u repeats this run)\n", fault_seed, fault_seed);
	srandom(fault_seed);
}

static bool
env_on(const char *name)
{
	const char *v = getenv(name);

	return v && v[0] && strcmp(v, "0") != 0;
}

static int
soak_minutes(void)
{
	const char *v = getenv("PGDBM_SOAK_MINUTES");

	return v && v[0] ? atoi(v) : 0;
}

/* A random number of milliseconds in [0, max). */
static int
rand_ms(int max)
{
	return max > 0 ? (int)(random() % max) : 0;
}

static void
sleep_ms(int ms)
{
	usleep((useconds_t)ms * 1000);
}

/* Run SQL on a fresh connection to one server's database (survives restarts). */
static void
exec_on(pgt_cluster *c, const char *db, const char *sql)
{
	PGconn *conn = pgt_connect(c, db);

	pgt_exec(conn, sql);
	PQfinish(conn);
}

/* Fresh database on both servers, the tables, the writers' script. */
static void
run_begin(run *r, const char *db, int clients)
{
	char sql[256];
	FILE *f;

	memset(r, 0, sizeof(*r));
	snprintf(r->db, sizeof(r->db), "%s", db);
	/* a story that failed half-way may have left its slot behind */
	story_drop_slots(&sv.src);
	r->clients = clients;
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
	exec_on(&sv.src, "postgres", sql);
	exec_on(&sv.tgt, "postgres", sql);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
	exec_on(&sv.src, "postgres", sql);
	/* the target as on a managed service: a NOSUPERUSER role that owns its database */
	{
		PGconn *admin = pgt_connect(&sv.tgt, "postgres");

		pgt_owned_database(admin, db, "app");
		PQfinish(admin);
	}
	story_connstrs(&sv, db, r->src, r->tgt, sizeof(r->src));
	r->s = pgt_connect(&sv.src, db);
	pgt_exec(r->s, "CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL)");
	pgt_exec(r->s, "CREATE TABLE log (k bigserial PRIMARY KEY, client int, note text)");
	pgt_exec(r->s, "CREATE TABLE notes (client int, body text)");
	pgt_exec(r->s, "ALTER TABLE notes REPLICA IDENTITY FULL");
	pgt_exec(r->s, "INSERT INTO counters SELECT g, 0 FROM generate_series(1, 100) g");
	pgt_exec(r->s, "INSERT INTO log (client, note) SELECT 0, repeat('x', 100) FROM "
	               "generate_series(1, 20000)");
	snprintf(sql, sizeof(sql), "%s.sql", db);
	pgt_scratch(sql, r->script, sizeof(r->script));
	f = fopen(r->script, "w");
	ck_assert_ptr_nonnull(f);
	fputs("\\set id random(1, 100)\n"
	      "BEGIN;\n"
	      "UPDATE counters SET n = n + 1 WHERE id = :id;\n"
	      "INSERT INTO log (client, note) VALUES (:client_id, 'tx ' || :id);\n",
	      f);
	/*
	 * notes has no key (REPLICA IDENTITY FULL): each delete scans it on both
	 * sides, so it grows slower the longer it runs; the soak leaves it out
	 */
	if (clients < 8)
		fputs("INSERT INTO notes VALUES (:client_id, md5(random()::text));\n"
		      "DELETE FROM notes WHERE ctid = (SELECT min(ctid) FROM notes WHERE client = "
		      ":client_id) AND random() < 0.4;\n",
		      f);
	fputs("END;\n", f);
	fclose(f);
	snprintf(sql, sizeof(sql), "%s-dump", db);
	pgt_scratch(sql, r->dump, sizeof(r->dump));
}

/* Writers for secs seconds (in the background). */
static void
writers_start(run *r, int secs)
{
	char c[16], t[16];
	const char *const args[] = {"-n", "-c", c, "-T", t, "-f", r->script, r->src, NULL};

	snprintf(c, sizeof(c), "%d", r->clients);
	snprintf(t, sizeof(t), "%d", secs);
	story_pgbench_start(&r->write, args, NULL);
	r->writing = true;
}

/* Wait for the writers; a restart of the source may have cut some short (exit 2). */
static void
writers_wait(run *r, bool may_abort)
{
	int rc;
	char *err;

	if (!r->writing)
		return;
	rc = story_finish(&r->write, 600, NULL, &err);
	r->writing = false;
	ck_assert_msg(rc == 0 || (may_abort && rc == 2), "pgbench exited %d: %s", rc, err);
	free(err);
}

/* Start pg_dbmigrator --mode online with the standard options plus extra (NULL-terminated). */
static void
tool_start(run *r, const char *const extra[])
{
	const char *const args[] = {"--mode",
	                            "online",
	                            "--source",
	                            r->src,
	                            "--target",
	                            r->tgt,
	                            "--dump-path",
	                            r->dump,
	                            "--cutover-poll-secs",
	                            "1",
	                            "--verify",
	                            "strict",
	                            "--reconnect-max-wait",
	                            "120",
	                            "--wal-receiver-timeout",
	                            "4",
	                            "--group-commit",
	                            "50",
	                            "--no-owner",
	                            NULL};

	story_tool_start(&r->tool, args, extra, NULL);
}

/* Wait for the tool to exit; its exit code, its stderr in *err (malloc'd). */
static int
tool_wait(run *r, int seconds, char **err)
{
	return story_finish(&r->tool, seconds, NULL, err);
}

/* Once caught up and the writers are done: Ctrl+C, expect a clean exit. */
static void
cut_over(run *r)
{
	char *err;
	int rc;

	story_expect(&r->tool, "stage=CaughtUp", 120);
	writers_wait(r, false);
	kill(r->tool.pid, SIGINT);
	rc = tool_wait(r, 300, &err);
	ck_assert_msg(rc == 0, "the cutover exited %d: ...%s", rc, story_tail(err));
	free(err);
}

/* Every table equal, the slot gone; then close the run. */
static void
run_check_and_end(run *r)
{
	PGconn *t = pgt_connect(&sv.tgt, r->db);
	char buf[64];

	PQfinish(r->s);
	r->s = pgt_connect(&sv.src, r->db);
	pgt_assert_same(r->s, t, "counters");
	pgt_assert_same(r->s, t, "log");
	pgt_assert_same(r->s, t, "notes");
	ck_assert_str_eq(pgt_value(r->s, "SELECT count(*) FROM pg_replication_slots", buf, sizeof(buf)),
	                 "0");
	printf("faults: %s: %s log rows compared, equal\n", r->db,
	       pgt_value(t, "SELECT count(*) FROM log", buf, sizeof(buf)));
	PQfinish(t);
	PQfinish(r->s);
	r->s = NULL;
}

/* The pid of the walsender holding the slot (0 if none). */
static pid_t
walsender_pid(run *r)
{
	char buf[32];
	PGconn *c = pgt_connect(&sv.src, "postgres");

	pgt_value(c, "SELECT coalesce(max(active_pid), 0) FROM pg_replication_slots", buf, sizeof(buf));
	PQfinish(c);
	(void)r;
	return (pid_t)atoi(buf);
}

/* ------------------------------------------------------------- reconnects */

START_TEST(the_walsender_is_terminated_and_the_tool_carries_on)
{
	run r;
	char *err;

	run_begin(&r, "f_walsender", 2);
	writers_start(&r, 8);
	tool_start(&r, NULL);
	story_expect(&r.tool, "stage=CaughtUp", 120);
	pgt_exec(r.s, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots");
	story_expect(&r.tool, "reconnected: streaming", 60);
	cut_over(&r);
	err = pgt_stderr(&r.tool);
	ck_assert_msg(strstr(err, "stage=Reconnect"), "no Reconnect event: %s", story_tail(err));
	free(err);
	run_check_and_end(&r);
}
END_TEST

START_TEST(the_target_restarts_mid_group_and_nothing_is_applied_twice)
{
	run r;

	run_begin(&r, "f_target", 2);
	writers_start(&r, 10);
	tool_start(&r, NULL);
	story_expect(&r.tool, "stage=CaughtUp", 120);
	sleep_ms(500 + rand_ms(1000));
	pgt_restart(&sv.tgt);
	story_expect(&r.tool, "reconnected: streaming", 90);
	cut_over(&r);
	run_check_and_end(&r);
}
END_TEST

/*
 * The target commits asynchronously (the default, as a subscription's): a
 * commit the target has not flushed yet is gone after a crash, so the source
 * must not have been told it was applied. The target's WAL writer is slowed
 * to 10 s, so such commits stay unflushed until the tool's next synchronous
 * one; the target crashes the moment the last row shows up there.
 */
START_TEST(the_target_crashes_with_commits_not_yet_on_its_disk_and_they_come_again)
{
	run r;
	char buf[32];
	PGconn *t;
	int seen = 0;

	run_begin(&r, "f_crash", 1);
	exec_on(&sv.tgt, "postgres", "ALTER SYSTEM SET wal_writer_delay = '10s'");
	exec_on(&sv.tgt, "postgres", "SELECT pg_reload_conf()");
	tool_start(&r, NULL);
	story_expect(&r.tool, "stage=CaughtUp", 120);
	for (int i = 1; i <= 8; i++)
	{
		char sql[128];

		snprintf(sql, sizeof(sql), "INSERT INTO log (client, note) VALUES (99, 'row %d')", i);
		pgt_exec(r.s, sql);
		sleep_ms(30);
	}
	t = pgt_connect(&sv.tgt, r.db);
	for (int w = 0; w < 6000 && seen < 8; w++)
	{
		seen = atoi(pgt_value(t, "SELECT count(*) FROM log WHERE client = 99", buf, sizeof(buf)));
		if (seen < 8)
			sleep_ms(2);
	}
	PQfinish(t);
	ck_assert_int_eq(seen, 8);
	pgt_crash(&sv.tgt);
	story_expect(&r.tool, "reconnected: streaming", 90);
	cut_over(&r);
	exec_on(&sv.tgt, "postgres", "ALTER SYSTEM RESET wal_writer_delay");
	exec_on(&sv.tgt, "postgres", "SELECT pg_reload_conf()");
	run_check_and_end(&r);
}
END_TEST

START_TEST(the_source_restarts_and_the_tool_reattaches_to_its_slot)
{
	run r;

	run_begin(&r, "f_source", 2);
	writers_start(&r, 4);
	tool_start(&r, NULL);
	story_expect(&r.tool, "stage=CaughtUp", 120);
	/* pgbench's sessions die with the server: it may end with "Run was aborted" */
	pgt_restart(&sv.src);
	writers_wait(&r, true);
	writers_start(&r, 4);
	story_expect(&r.tool, "reconnected: streaming", 90);
	cut_over(&r);
	run_check_and_end(&r);
}
END_TEST

START_TEST(a_stalled_source_is_noticed_and_a_stalled_target_only_waits)
{
	run r;
	pid_t ws;
	char sql[256], buf[256];
	PGconn *t;

	run_begin(&r, "f_stall", 2);
	writers_start(&r, 14);
	tool_start(&r, NULL);
	story_expect(&r.tool, "stage=CaughtUp", 120);
	/* the source side goes silent, longer than wal_sender_timeout (3 s) and the tool's 4 s */
	ws = walsender_pid(&r);
	ck_assert_int_gt(ws, 0);
	kill(ws, SIGSTOP);
	story_expect(&r.tool, "no message from the source", 30);
	sleep_ms(2000);
	kill(ws, SIGCONT);
	story_expect(&r.tool, "reconnected: streaming", 90);
	/* the target's apply session stalls for a while: the tool waits, keeps the source content */
	t = pgt_connect(&sv.tgt, r.db);
	snprintf(sql, sizeof(sql),
	         "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE application_name = "
	         "'pg_dbmigrator apply' AND datname = '%s'",
	         r.db);
	for (int i = 0; i < 50 && strcmp(pgt_value(t, sql, buf, sizeof(buf)), "0") == 0; i++)
		sleep_ms(100);
	ck_assert_str_ne(buf, "0");
	kill((pid_t)atoi(buf), SIGSTOP);
	sleep_ms(6000);
	kill((pid_t)atoi(buf), SIGCONT);
	PQfinish(t);
	cut_over(&r);
	run_check_and_end(&r);
}
END_TEST

/* ------------------------------------------------------- kill -9, then resume */

typedef struct kill_phase
{
	const char *name;
	const char *marker; /* kill after this text appears in the tool's stderr (NULL: at start) */
	int jitter_ms;      /* plus a random delay below this */
	bool cutover_first; /* send Ctrl+C once caught up, then wait for the marker */
} kill_phase;

static const kill_phase kill_phases[] = {
    {"Validate", NULL, 250, false},
    {"PrepareSnapshot", "stage=Validate", 150, false},
    {"Dump", "stage=Dump", 300, false},
    {"Restore", "stage=Restore", 400, false},
    {"StreamApply", "stage=StreamApply", 300, false},
    {"applying", "stage=CaughtUp", 1500, false},
    {"Cutover", "stage=Cutover", 150, true},
    {"SequenceSync", "stage=SequenceSync", 15, true},
    {"Verify", "stage=Verify", 30, true},
};
#define N_KILL_PHASES ((int)(sizeof(kill_phases) / sizeof(kill_phases[0])))

START_TEST(kill_9_in_every_phase_then_resume_completes)
{
	int runs = env_on("PGDBM_FAULTS_LONG") ? 5 * N_KILL_PHASES : N_KILL_PHASES;
	int killed_runs = 0;

	for (int i = 0; i < runs; i++)
	{
		const kill_phase *ph = &kill_phases[i % N_KILL_PHASES];
		const char *resume[] = {"--resume", NULL};
		char db[64], *err;
		run r;
		int rc, delay = rand_ms(ph->jitter_ms);

		snprintf(db, sizeof(db), "f_kill_%d", i);
		run_begin(&r, db, 2);
		writers_start(&r, 6);
		tool_start(&r, NULL);
		if (ph->cutover_first)
		{
			story_expect(&r.tool, "stage=CaughtUp", 120);
			writers_wait(&r, false);
			kill(r.tool.pid, SIGINT);
		}
		if (ph->marker)
			(void)pgt_wait_for_text(r.tool.err_path, ph->marker, 60);
		sleep_ms(delay);
		kill(r.tool.pid, SIGKILL);
		rc = tool_wait(&r, 30, &err);
		printf("faults: run %d: kill -9 in %s (+%d ms): exit %d\n", i + 1, ph->name, delay, rc);
		killed_runs += rc == 128 + SIGKILL;
		free(err);
		/* the operator's answer to any crash: the same command with --resume */
		{
			tool_start(&r, resume);
			/* a run killed after the cutover finishes by itself; otherwise cut over again */
			for (int w = 0; w < 1200; w++)
			{
				siginfo_t info = {0};

				/* WNOWAIT: the exit status stays for tool_wait */
				if (pgt_count_in_file(r.tool.err_path, "stage=CaughtUp") > 0 ||
				    (waitid(P_PID, (id_t)r.tool.pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
				     info.si_pid != 0))
					break;
				sleep_ms(100);
			}
			if (pgt_count_in_file(r.tool.err_path, "stage=CaughtUp") > 0)
			{
				writers_wait(&r, false);
				kill(r.tool.pid, SIGINT);
			}
			rc = tool_wait(&r, 300, &err);
			ck_assert_msg(rc == 0, "run %d (killed in %s): --resume exited %d: ...%s", i + 1,
			              ph->name, rc, story_tail(err));
			free(err);
		}
		writers_wait(&r, false);
		run_check_and_end(&r);
	}
	printf("faults: %d kill -9 runs (%d killed mid-run), all resumed and equal\n", runs,
	       killed_runs);
}
END_TEST

/* ------------------------------------------------------------ fatal faults */

START_TEST(a_dropped_slot_is_a_clear_fatal_error)
{
	run r;
	char *err;
	int rc;
	bool dropped = false;

	run_begin(&r, "f_dropslot", 1);
	writers_start(&r, 3);
	tool_start(&r, NULL);
	story_expect(&r.tool, "stage=CaughtUp", 120);
	writers_wait(&r, false);
	/* between the walsender's end and the tool's reconnect, the slot goes */
	for (int i = 0; i < 200 && !dropped; i++)
	{
		PGresult *res = PQexec(r.s, "SELECT pg_terminate_backend(active_pid) FROM "
		                            "pg_replication_slots WHERE active_pid IS NOT NULL");

		PQclear(res);
		res = PQexec(r.s, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots");
		dropped = PQresultStatus(res) == PGRES_TUPLES_OK;
		PQclear(res);
		if (!dropped)
			sleep_ms(20);
	}
	ck_assert_msg(dropped, "could not drop the slot");
	rc = tool_wait(&r, 120, &err);
	ck_assert_msg(rc == 1, "exit %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "is gone from the source") && strstr(err, "--force-clean"),
	              "unclear error: %s", story_tail(err));
	ck_assert_msg(!strstr(err, "stage=Cutover") && !strstr(err, "stage=SequenceSync"),
	              "a partial cutover: %s", story_tail(err));
	free(err);
	PQfinish(r.s);
}
END_TEST

START_TEST(an_invalidated_slot_is_a_clear_fatal_error)
{
	run r;
	char *err, buf[64];
	int rc;

	run_begin(&r, "f_lostslot", 1);
	tool_start(&r, NULL);
	story_expect(&r.tool, "stage=CaughtUp", 120);
	/* the tool stalls (as a stuck client would) while the source writes past the limit */
	kill(r.tool.pid, SIGSTOP);
	pgt_exec(r.s, "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'");
	pgt_exec(r.s, "SELECT pg_reload_conf()");
	for (int i = 0; i < 40; i++)
	{
		pgt_exec(r.s, "INSERT INTO log (client, note) SELECT 9, repeat('y', 500) FROM "
		              "generate_series(1, 5000)");
		pgt_exec(r.s, "SELECT pg_switch_wal()");
		pgt_exec(r.s, "CHECKPOINT");
		if (strcmp(pgt_value(r.s, "SELECT coalesce(max(wal_status), '') FROM pg_replication_slots",
		                     buf, sizeof(buf)),
		           "lost") == 0)
			break;
	}
	ck_assert_str_eq(buf, "lost");
	kill(r.tool.pid, SIGCONT);
	rc = tool_wait(&r, 180, &err);
	pgt_exec(r.s, "ALTER SYSTEM RESET max_slot_wal_keep_size");
	pgt_exec(r.s, "SELECT pg_reload_conf()");
	ck_assert_msg(rc == 1, "exit %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "invalidated") && strstr(err, "max_slot_wal_keep_size") &&
	                  strstr(err, "start over"),
	              "unclear error: %s", story_tail(err));
	ck_assert_msg(!strstr(err, "stage=Cutover"), "a partial cutover: %s", story_tail(err));
	free(err);
	pgt_exec(r.s, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots");
	PQfinish(r.s);
}
END_TEST

START_TEST(with_ddl_stop_a_column_added_on_the_source_stops_the_apply_with_the_fix)
{
	run r;
	char *err, lsn_before[64], confirmed[64], buf[200];
	/* --ddl stop: the behaviour when the source role may not capture DDL (else it is replayed) */
	const char *stop[] = {"--ddl", "stop", NULL};
	const char *resume[] = {"--resume", "--ddl", "stop", NULL};
	int rc;
	PGconn *t;

	run_begin(&r, "f_ddl", 1);
	tool_start(&r, stop);
	story_expect(&r.tool, "stage=CaughtUp", 120);
	pgt_exec(r.s, "INSERT INTO log (client, note) VALUES (1, 'before the DDL')");
	pgt_exec(r.s, "ALTER TABLE counters ADD COLUMN \"Last Seen\" timestamptz DEFAULT now()");
	/*
	 * the DDL itself publishes nothing, so a keepalive past it may be
	 * acknowledged; the first change that needs the new column may not be
	 */
	pgt_value(r.s, "SELECT pg_current_wal_insert_lsn()", lsn_before, sizeof(lsn_before));
	pgt_exec(r.s, "UPDATE counters SET n = n + 1 WHERE id = 1");
	pgt_exec(r.s, "INSERT INTO log (client, note) VALUES (1, 'after the DDL')");
	rc = tool_wait(&r, 120, &err);
	ck_assert_msg(rc == 1, "exit %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "Last Seen") && strstr(err, "counters") &&
	                  strstr(err, "ADD COLUMN \"Last Seen\" timestamp with time zone") &&
	                  strstr(err, "--resume"),
	              "unclear error: %s", story_tail(err));
	free(err);
	/* nothing from the update on was acknowledged (the update and the later insert) */
	pgt_value(r.s, "SELECT confirmed_flush_lsn FROM pg_replication_slots", confirmed,
	          sizeof(confirmed));
	snprintf(buf, sizeof(buf), "SELECT '%s'::pg_lsn <= '%s'::pg_lsn", confirmed, lsn_before);
	ck_assert_str_eq(pgt_value(r.s, buf, buf, sizeof(buf)), "t");
	/* the operator does what the message says, and resumes */
	t = pgt_connect(&sv.tgt, r.db);
	pgt_exec(t, "ALTER TABLE counters ADD COLUMN \"Last Seen\" timestamp with time zone");
	PQfinish(t);
	writers_start(&r, 3);
	tool_start(&r, resume);
	cut_over(&r);
	run_check_and_end(&r);
}
END_TEST

START_TEST(a_row_the_target_rejects_stops_with_relation_key_and_lsn)
{
	run r;
	char *err;
	const char *resume[] = {"--resume", NULL};
	PGconn *t;
	int rc;

	run_begin(&r, "f_reject", 1);
	tool_start(&r, NULL);
	story_expect(&r.tool, "stage=CaughtUp", 120);
	t = pgt_connect(&sv.tgt, r.db);
	pgt_exec(t, "ALTER TABLE counters ADD CONSTRAINT small CHECK (n < 1000)");
	pgt_exec(r.s, "UPDATE counters SET n = 5000 WHERE id = 42");
	rc = tool_wait(&r, 120, &err);
	ck_assert_msg(rc == 1, "exit %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "counters") && strstr(err, "id=42") && strstr(err, "small") &&
	                  strstr(err, "committed at 0/"),
	              "the error does not name the relation, key, constraint and LSN: %s",
	              story_tail(err));
	free(err);
	/* the operator drops the target's extra constraint and resumes */
	pgt_exec(t, "ALTER TABLE counters DROP CONSTRAINT small");
	PQfinish(t);
	writers_start(&r, 2);
	tool_start(&r, resume);
	cut_over(&r);
	run_check_and_end(&r);
}
END_TEST

/*
 * Disk full: the dump goes to a small tmpfs (mounting needs root and a
 * kernel that allows it; the story is skipped, saying so, where it cannot).
 */
START_TEST(a_full_disk_during_the_dump_is_a_clear_error_and_resume_works)
{
	run r;
	char dir[400], token[600], *err, *text;
	const char *dump_method[] = {"--copy-method", "dump", NULL};
	const char *resume[] = {"--resume", "--copy-method", "dump", NULL};
	int rc;

	pgt_scratch("smalldisk", dir, sizeof(dir));
	mkdir(dir, 0700);
	if (geteuid() != 0 || mount("pgdbm-test", dir, "tmpfs", 0, "size=2m") != 0)
	{
		printf("faults: SKIPPED disk-full story: cannot mount a small tmpfs here\n");
		return;
	}
	run_begin(&r, "f_diskfull", 1);
	/* about 6 MB of table data: more than the disk has, even compressed */
	pgt_exec(r.s, "INSERT INTO log (client, note) SELECT 7, md5(g::text) || md5((g * 7)::text) "
	              "|| md5((g * 13)::text) FROM generate_series(1, 100000) g");
	snprintf(r.dump, sizeof(r.dump), "%s/dump", dir);
	/* the dump method: its dump holds the rows (the direct copy writes only the schema) */
	tool_start(&r, dump_method);
	rc = tool_wait(&r, 120, &err);
	ck_assert_msg(rc == 1, "exit %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "No space left on device") && strstr(err, "stage=Dump"),
	              "unclear error: %s", story_tail(err));
	free(err);
	snprintf(token, sizeof(token), "%s.resume.json", r.dump);
	text = pgt_read_file(token);
	ck_assert_msg(text && strstr(text, "\"stage\":\"PrepareSnapshot\"") && strchr(text, '}'),
	              "the resume token is missing or damaged: %s", text ? text : "(none)");
	free(text);
	{
		char buf[64];

		ck_assert_str_eq(
		    pgt_value(r.s, "SELECT count(*) FROM pg_replication_slots", buf, sizeof(buf)), "0");
	}
	/* the operator gives the dump room, and resumes */
	ck_assert_int_eq(mount("pgdbm-test", dir, "tmpfs", MS_REMOUNT, "size=64m"), 0);
	writers_start(&r, 3);
	tool_start(&r, resume);
	cut_over(&r);
	run_check_and_end(&r);
	umount2(dir, MNT_DETACH);
}
END_TEST

/* -------------------------------------------------------------------- soak */

/* Resident set size of pid in kB (0 if unknown). */
static long
rss_kb(pid_t pid)
{
	char path[64], *text, *p;
	long kb = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	text = pgt_read_file(path);
	if (text && (p = strstr(text, "VmRSS:")) != NULL)
		kb = strtol(p + 6, NULL, 10);
	free(text);
	return kb;
}

/* Bytes the slot is behind the source's WAL. */
static long long
lag_bytes(void)
{
	char buf[64];
	PGconn *c = pgt_connect(&sv.src, "postgres");

	pgt_value(c,
	          "SELECT coalesce(max(pg_current_wal_lsn() - confirmed_flush_lsn), 0)::bigint FROM "
	          "pg_replication_slots",
	          buf, sizeof(buf));
	PQfinish(c);
	return atoll(buf);
}

START_TEST(soak_with_faults_every_few_minutes)
{
	int minutes = soak_minutes(), every = 120, faults = 0;
	const char *e = getenv("PGDBM_SOAK_FAULT_SECS");
	time_t start, next;
	long rss_first = 0, rss_max = 0, rss_last = 0;
	run r;

	if (minutes <= 0)
		return;
	if (e && atoi(e) > 0)
		every = atoi(e);
	run_begin(&r, "f_soak", 8);
	writers_start(&r, minutes * 60);
	tool_start(&r, NULL);
	story_expect(&r.tool, "stage=CaughtUp", 300);
	start = time(NULL);
	next = start + every;
	while (time(NULL) < start + minutes * 60 - 30)
	{
		if (time(NULL) >= next)
		{
			int kind = faults % 3;
			int before = pgt_count_in_file(r.tool.err_path, "reconnected: streaming");
			time_t f0 = time(NULL);
			long long lag;

			if (kind == 0)
				exec_on(&sv.src, "postgres",
				        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots");
			else if (kind == 1)
				pgt_restart(&sv.tgt);
			else
				pgt_restart(&sv.src); /* pgbench clients die with it: start new ones */
			for (int w = 0;
			     w < 1200 && pgt_count_in_file(r.tool.err_path, "reconnected: streaming") <= before;
			     w++)
				sleep_ms(100);
			ck_assert_msg(pgt_count_in_file(r.tool.err_path, "reconnected: streaming") > before,
			              "no reconnect after fault %d", faults + 1);
			if (kind == 2)
			{
				writers_wait(&r, true);
				writers_start(&r, (int)(start + minutes * 60 - time(NULL)));
			}
			/* lag must come back under the CaughtUp threshold (1 MB) */
			for (int w = 0; w < 600 && (lag = lag_bytes()) > 1024 * 1024; w++)
				sleep_ms(500);
			ck_assert_msg(lag <= 1024 * 1024, "lag stayed at %lld bytes after fault %d", lag,
			              faults + 1);
			rss_last = rss_kb(r.tool.pid);
			if (rss_first == 0)
				rss_first = rss_last;
			if (rss_last > rss_max)
				rss_max = rss_last;
			printf("faults: soak: fault %d (%s) at %ld s: reconnected and lag %lld bytes after "
			       "%ld s; RSS %ld kB\n",
			       faults + 1,
			       kind == 0   ? "walsender terminated"
			       : kind == 1 ? "target restart"
			                   : "source restart",
			       (long)(f0 - start), lag, (long)(time(NULL) - f0), rss_last);
			fflush(stdout);
			faults++;
			next += every;
		}
		sleep_ms(1000);
	}
	writers_wait(&r, true);
	cut_over(&r);
	run_check_and_end(&r);
	printf("faults: soak: %d minutes, %d faults, RSS first %ld kB, max %ld kB, last %ld kB\n",
	       minutes, faults, rss_first, rss_max, rss_last);
	/* flat: the last fault's RSS is within 25 % (plus 8 MB) of the first one's */
	ck_assert_msg(rss_last <= rss_first + rss_first / 4 + 8192, "RSS grew from %ld to %ld kB",
	              rss_first, rss_last);
}
END_TEST

int
main(void)
{
	int minutes = soak_minutes();
	/* PGDBM_FAULTS_ONLY=text runs only the stories whose name contains text */
	const story_plan plan = {"faults",
	                         "faults",
	                         minutes > 0 ? minutes * 60 + 900 : 900,
	                         &sv,
	                         SOURCE_CONF,
	                         seed,
	                         .only_env = minutes > 0 ? NULL : "PGDBM_FAULTS_ONLY"};
	const TTest *const soak[] = {soak_with_faults_every_few_minutes, NULL};
	const TTest *const stories[] = {
	    the_walsender_is_terminated_and_the_tool_carries_on,
	    the_target_restarts_mid_group_and_nothing_is_applied_twice,
	    the_target_crashes_with_commits_not_yet_on_its_disk_and_they_come_again,
	    the_source_restarts_and_the_tool_reattaches_to_its_slot,
	    a_stalled_source_is_noticed_and_a_stalled_target_only_waits,
	    kill_9_in_every_phase_then_resume_completes,
	    a_dropped_slot_is_a_clear_fatal_error,
	    an_invalidated_slot_is_a_clear_fatal_error,
	    with_ddl_stop_a_column_added_on_the_source_stops_the_apply_with_the_fix,
	    a_row_the_target_rejects_stops_with_relation_key_and_lsn,
	    a_full_disk_during_the_dump_is_a_clear_error_and_resume_works,
	    NULL};

	return story_run_suite(story_suite(&plan, minutes > 0 ? soak : stories));
}
