/*
 * check_prod_outcomes.c — what a run tells its operator when it ends: an
 * exit code and a last event automation can trust, a warning for what the
 * stream cannot carry, a prompt stop for what no retry can heal, and
 * messages that name real positions.
 *
 * The target is reached as a NOSUPERUSER role ("app") that owns the target
 * database, as on a managed service; the source objects belong to a role of
 * the same name there, so the restore may give them to it.
 *
 * PGDBM_DEBUG=1 prints the tool's log after each run.
 *
 * The stories:
 *  - a target row changed by hand while streaming: the migration cuts over
 *    and exits 4 with a Complete warning saying verified=differences (it
 *    used to exit 0, "Complete", as if all were well); `verify` exits 4; the
 *    Cutover event names a real position though nothing was streamed;
 *  - the same with --verify strict: exit 1, and the way forward is to fix
 *    the target and --resume (not "the slot is kept": it was dropped);
 *  - the verification cannot connect (a connection limit): exit 4 and
 *    verified=unverified, not a clean Complete (it was exit 0);
 *  - an unlogged table and a large object: Validate names them; changed on
 *    the source after the dump, the table differs, and both the migration's
 *    verification and `verify` say so (nothing said so before); the large
 *    objects are carried over at the cutover (they used to differ too);
 *  - a row larger than --ring-size: exit 1 within seconds saying how large
 *    the ring must be, the slot kept (it used to reconnect every second for
 *    ever); resumed with that ring, it completes;
 *  - the walsender killed again and again: every reconnect succeeds but
 *    nothing progresses; the tool gives up after --reconnect-max-wait (it
 *    used to start the window again after each reconnect, so never);
 *  - an offline run whose restore fails: the message speaks of the dump and
 *    --resume, not of a slot (there is none).
 */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgtest.h"
#include "story.h"

/* pg_dbmigrator's exit codes (include/cmd.h) */
#define EXIT_DIFFERS 4

static story_servers sv;

/* One migration under test. */
typedef struct run
{
	char db[64];
	char src[256];  /* the source as postgres (it replicates) */
	char tgt[256];  /* the target as app */
	char dump[512]; /* --dump-path */
	PGconn *s;      /* the source as app: the application */
	PGconn *t;      /* the target as postgres: the test's eyes */
	pgt_proc tool;
} run;

/* One pair of servers for every story (each story is its own case, for CK_RUN_CASE). */
static void
setup(void)
{
	if (!sv.src.running)
		story_servers_start(&sv, STORY_SOURCE_CONF);
}

static void
teardown(void)
{
}

static void
sleep_ms(int ms)
{
	usleep((useconds_t)ms * 1000);
}

static int64_t
now_ms(void)
{
	return story_now_us() / 1000;
}

/* Database db owned by app on both servers (a failed story's slots dropped); connections, paths. */
static void
run_begin(run *st, const char *db)
{
	char name[128];

	memset(st, 0, sizeof(*st));
	snprintf(st->db, sizeof(st->db), "%s", db);
	story_drop_slots(&sv.src);
	story_app_databases(&sv, db);
	story_connstrs(&sv, db, st->src, st->tgt, sizeof(st->src));
	st->s = pgt_connect_as(&sv.src, db, "app");
	st->t = pgt_connect(&sv.tgt, db);
	snprintf(name, sizeof(name), "%s-dump", db);
	pgt_scratch(name, st->dump, sizeof(st->dump));
}

static void
run_end(run *st)
{
	PQfinish(st->s);
	PQfinish(st->t);
	st->s = st->t = NULL;
}

/* The application's accounts on the source: 100 of them, 100 each. */
static void
accounts(run *st)
{
	pgt_exec(st->s, "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)");
	pgt_exec(st->s, "INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 100) g");
}

/* Start the tool: --mode mode, the story's servers, then extra (NULL-terminated). */
static void
tool_start(run *st, const char *mode, const char *const extra[], const char *const env_extra[])
{
	const char *const args[] = {"--mode",      mode,       "--source",
	                            st->src,       "--target", st->tgt,
	                            "--dump-path", st->dump,   "--cutover-poll-secs",
	                            "1",           NULL};

	story_tool_start(&st->tool, args, extra, env_extra);
}

/* Wait for the tool's exit (killed after seconds): its code; its stdout and stderr (malloc'd). */
static int
tool_wait(run *st, int seconds, char **out, char **err)
{
	int rc = story_finish(&st->tool, seconds, out, err);

	if (getenv("PGDBM_DEBUG")) /* the tool's log, to read what an operator sees */
		fprintf(stderr, "---- %s: exit %d\n%s", st->db, rc, *err);
	return rc;
}

/* Run `pg_dbmigrator verify` on the story's servers: its exit code, its output. */
static int
run_verify(run *st, char **out)
{
	const char *const args[] = {"verify", "--source", st->src, "--target", st->tgt, NULL};

	return story_run(args, NULL, 60, out, NULL);
}

/* The number of replication slots on the source. */
static int
slots(void)
{
	PGconn *c = pgt_connect(&sv.src, "postgres");
	char buf[32];
	int n = atoi(pgt_value(c, "SELECT count(*) FROM pg_replication_slots", buf, sizeof(buf)));

	PQfinish(c);
	return n;
}

/*
 * A support engineer "fixes" a row on the new server while the migration
 * streams. The run's own verification finds it; before, the run still ended
 * with exit 0 and an INFO "Complete", and a script moving the application
 * over had no way to know. Nothing is written on the source after the dump,
 * so nothing is applied in this run: the Cutover event must still name a
 * real position (it said applied_lsn=0/0).
 */
START_TEST(test_differences_are_not_a_clean_success)
{
	run st;
	char *out, *err;
	int rc;

	run_begin(&st, "outcome_differs");
	accounts(&st);
	tool_start(&st, "online", (const char *const[]){"--json", NULL}, NULL);
	story_expect(&st.tool, "stage=CaughtUp", 120);
	pgt_exec(st.t, "UPDATE accounts SET balance = -1 WHERE id = 7");
	kill(st.tool.pid, SIGINT);
	rc = tool_wait(&st, 120, &out, &err);
	ck_assert_msg(rc == EXIT_DIFFERS, "exit %d (want %d: cut over, target differs): ...%s", rc,
	              EXIT_DIFFERS, story_tail(err));
	ck_assert_msg(strstr(out, "\"stage\":\"Complete\",\"level\":\"warning\"") &&
	                  strstr(out, "\"verified\":\"differences\""),
	              "the Complete event does not say the target differs: %s", story_tail(out));
	ck_assert_msg(strstr(err, "WARNING stage=Verify") && strstr(err, "public.accounts"), "%s",
	              story_tail(err));
	/* cut over: the slot is gone */
	ck_assert_int_eq(slots(), 0);
	/* the Cutover event names the position the target holds, not 0/0 */
	{
		const char *cut = strstr(err, "stage=Cutover everything");
		const char *eol = cut ? strchr(cut, '\n') : NULL;

		ck_assert_msg(cut != NULL, "%s", story_tail(err));
		ck_assert_msg(memmem(cut, (size_t)(eol - cut), "0/0 ", 4) == NULL &&
		                  memmem(cut, (size_t)(eol - cut), "=0/0", 4) == NULL,
		              "the Cutover event names no real position: %.*s", (int)(eol - cut), cut);
	}
	free(out);
	free(err);
	/* the verify command says the same, with the same code */
	rc = run_verify(&st, &out);
	ck_assert_msg(rc == EXIT_DIFFERS && strstr(out, "public.accounts"), "verify exited %d: %s", rc,
	              out);
	free(out);
	/* put the row back: then the two are equal, and verify says so */
	pgt_exec(st.t, "UPDATE accounts SET balance = 100 WHERE id = 7");
	rc = run_verify(&st, &out);
	ck_assert_msg(rc == 0, "verify exited %d: %s", rc, out);
	free(out);
	pgt_assert_same(st.s, st.t, "accounts");
	run_end(&st);
}
END_TEST

/*
 * The same with --verify strict: exit 1, no Complete. The run has cut over
 * and dropped its slot, so the way forward must not be "the slot and the
 * dump are kept" (what it said): fix the target, --resume verifies again and
 * completes.
 */
START_TEST(test_strict_verification_after_the_cutover_says_what_is_left)
{
	run st;
	char *out, *err;
	int rc;

	run_begin(&st, "outcome_strict");
	accounts(&st);
	tool_start(&st, "online", (const char *const[]){"--verify", "strict", NULL}, NULL);
	story_expect(&st.tool, "stage=CaughtUp", 120);
	pgt_exec(st.t, "DELETE FROM accounts WHERE id = 7");
	kill(st.tool.pid, SIGINT);
	rc = tool_wait(&st, 120, &out, &err);
	free(out);
	ck_assert_msg(rc == 1, "exit %d: ...%s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "stage=Complete") == NULL, "%s", story_tail(err));
	ck_assert_msg(strstr(err, "slot and the dump are kept") == NULL &&
	                  strstr(err, "fix the target, then run again with --resume"),
	              "%s", story_tail(err));
	ck_assert_int_eq(slots(), 0);
	free(err);
	pgt_exec(st.t, "INSERT INTO accounts VALUES (7, 100)");
	tool_start(&st, "online", (const char *const[]){"--verify", "strict", "--resume", NULL}, NULL);
	rc = tool_wait(&st, 120, &out, &err);
	free(out);
	ck_assert_msg(rc == 0 && strstr(err, "stage=Complete"), "the resumed run exited %d: ...%s", rc,
	              story_tail(err));
	free(err);
	pgt_assert_same(st.s, st.t, "accounts");
	run_end(&st);
}
END_TEST

/*
 * A comparison that cannot be made is no proof either: the target stops
 * taking new connections just as the run cuts over (a connection limit an
 * operator set), so the verification cannot even connect. The run has cut
 * over; it ends with exit 4 and verified=unverified, not a clean Complete.
 */
START_TEST(test_a_verification_that_cannot_run_is_not_clean)
{
	run st;
	char *out, *err;
	int rc;

	run_begin(&st, "outcome_unverified");
	accounts(&st);
	tool_start(&st, "online", NULL, NULL);
	story_expect(&st.tool, "stage=CaughtUp", 120);
	/* the tool's open sessions go on; any new one for app is refused */
	pgt_exec(st.t, "ALTER DATABASE outcome_unverified CONNECTION LIMIT 0");
	kill(st.tool.pid, SIGINT);
	rc = tool_wait(&st, 120, &out, &err);
	free(out);
	pgt_exec(st.t, "ALTER DATABASE outcome_unverified CONNECTION LIMIT -1");
	ck_assert_msg(rc == EXIT_DIFFERS, "exit %d (want %d): ...%s", rc, EXIT_DIFFERS,
	              story_tail(err));
	ck_assert_msg(strstr(err, "WARNING stage=Complete") && strstr(err, "verified=unverified") &&
	                  strstr(err, "could not compare"),
	              "%s", story_tail(err));
	ck_assert_int_eq(slots(), 0);
	free(err);
	pgt_assert_same(st.s, st.t, "accounts");
	run_end(&st);
}
END_TEST

/*
 * An unlogged table of sessions and a large object: the dump copies both,
 * but neither is in the WAL that logical decoding reads. Validate must say
 * so up front; the table's later changes never reach the target, and the
 * verification must see that. The large objects' changes are carried over
 * at the cutover (the LargeObjects phase): they used to be lost too.
 */
START_TEST(test_unlogged_tables_and_large_objects_are_named)
{
	run st;
	char *out, *err, oid[32], line[128];
	int rc;

	run_begin(&st, "outcome_unstreamed");
	pgt_exec(st.s, "CREATE UNLOGGED TABLE sessions (id int PRIMARY KEY, data text)");
	pgt_exec(st.s, "INSERT INTO sessions SELECT g, 'session ' || g FROM generate_series(1, 10) g");
	pgt_exec(st.s, "CREATE TABLE docs (id int PRIMARY KEY, body oid NOT NULL)");
	pgt_exec(st.s, "INSERT INTO docs VALUES (1, lo_from_bytea(0, 'the first draft'))");
	/* a scan of 2.5 MB, read in pieces on both sides: equal, so never named */
	pgt_exec(st.s, "INSERT INTO docs VALUES (3, lo_from_bytea(0, convert_to(repeat('scan ', "
	               "500000), 'UTF8')))");
	pgt_value(st.s, "SELECT body FROM docs WHERE id = 1", oid, sizeof(oid));
	tool_start(&st, "online", NULL, NULL);
	story_expect(&st.tool, "stage=CaughtUp", 120);
	/* the application goes on: a new session, the document edited */
	pgt_exec(st.s, "INSERT INTO sessions VALUES (11, 'session 11')");
	pgt_exec(st.s, "SELECT lo_put(body, 4, '\\x4649525354'::bytea) FROM docs WHERE id = 1");
	pgt_exec(st.s, "INSERT INTO docs VALUES (2, lo_from_bytea(0, 'a second document'))");
	kill(st.tool.pid, SIGINT);
	rc = tool_wait(&st, 120, &out, &err);
	free(out);
	/* Validate named them before anything started */
	ck_assert_msg(strstr(err, "WARNING stage=Validate") && strstr(err, "public.sessions") &&
	                  strstr(err, "2 large objects"),
	              "Validate did not name the unlogged table and the large object: %s",
	              story_tail(err));
	ck_assert_msg(rc == EXIT_DIFFERS, "exit %d (want %d): ...%s", rc, EXIT_DIFFERS,
	              story_tail(err));
	snprintf(line, sizeof(line), "large object %s: content differs", oid);
	ck_assert_msg(!strstr(err, line) && strstr(err, "public.sessions") &&
	                  strstr(err, "stage=LargeObjects"),
	              "%s", story_tail(err));
	free(err);
	/* and so does verify, on its own */
	rc = run_verify(&st, &out);
	ck_assert_msg(rc == EXIT_DIFFERS && !strstr(out, line) && strstr(out, "public.sessions") &&
	                  strstr(out, "large objects: 3 on the source, 3 on the target, 0 differ"),
	              "verify exited %d: %s", rc, out);
	free(out);
	/* the logged table streamed, the large objects were carried; the unlogged one is the dump's */
	pgt_assert_same(st.s, st.t, "docs");
	ck_assert_str_eq(pgt_value(st.t, "SELECT count(*) FROM sessions", line, sizeof(line)), "10");
	ck_assert_str_eq(pgt_value(st.t, "SELECT encode(lo_get(body), 'escape') FROM docs WHERE id = 1",
	                           line, sizeof(line)),
	                 "the FIRST draft");
	run_end(&st);
}
END_TEST

/*
 * One row of 3 MB with --ring-size 1MB: the message can never fit. It used
 * to fail, reconnect a second later, fail on the same message, for as long
 * as the tool ran. Now: exit 1 at once, the size the ring needs, the slot
 * kept; --resume with that ring goes on and completes.
 */
START_TEST(test_a_message_larger_than_the_ring_stops_at_once)
{
	run st;
	char *out, *err;
	int rc;
	int64_t t0;

	run_begin(&st, "outcome_bigrow");
	pgt_exec(st.s, "CREATE TABLE attachments (id int PRIMARY KEY, body text)");
	pgt_exec(st.s, "INSERT INTO attachments VALUES (1, 'small')");
	tool_start(&st, "online", (const char *const[]){"--ring-size", "1MB", NULL}, NULL);
	story_expect(&st.tool, "stage=CaughtUp", 120);
	pgt_exec(st.s, "INSERT INTO attachments VALUES (2, repeat('x', 3000000))");
	t0 = now_ms();
	rc = tool_wait(&st, 40, &out, &err);
	free(out);
	ck_assert_msg(rc == 1, "exit %d after %lld ms (want 1 at once): ...%s", rc,
	              (long long)(now_ms() - t0), story_tail(err));
	ck_assert_msg(now_ms() - t0 < 20000, "took %lld ms", (long long)(now_ms() - t0));
	ck_assert_msg(strstr(err, "raise --ring-size to at least 3MB"), "%s", story_tail(err));
	ck_assert_msg(strstr(err, "stage=Reconnect") == NULL, "retried: %s", story_tail(err));
	ck_assert_msg(strstr(err, " 0/0") == NULL, "a position printed as 0/0: %s", story_tail(err));
	ck_assert_int_eq(slots(), 1);
	free(err);
	/* as told: a larger ring, --resume */
	tool_start(&st, "online", (const char *const[]){"--ring-size", "3MB", "--resume", NULL}, NULL);
	story_expect(&st.tool, "stage=CaughtUp", 120);
	kill(st.tool.pid, SIGINT);
	rc = tool_wait(&st, 120, &out, &err);
	ck_assert_msg(rc == 0, "the resumed run exited %d: ...%s", rc, story_tail(err));
	free(out);
	free(err);
	ck_assert_int_eq(slots(), 0);
	pgt_assert_same(st.s, st.t, "attachments");
	run_end(&st);
}
END_TEST

/*
 * Something on the source kills the tool's walsender again and again (a
 * watchdog script gone wrong): each reconnect succeeds, then dies before
 * anything is applied. The tool must give up --reconnect-max-wait after its
 * last progress; it used to start the window over at every reconnect.
 */
START_TEST(test_reconnects_without_progress_give_up)
{
	run st;
	char *out, *err;
	int rc = -1;
	int64_t t0;
	PGconn *admin;

	run_begin(&st, "outcome_noprogress");
	pgt_exec(st.s, "CREATE TABLE orders (id int PRIMARY KEY, note text)");
	pgt_exec(st.s, "INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 100) g");
	tool_start(&st, "online", (const char *const[]){"--reconnect-max-wait", "5", NULL}, NULL);
	story_expect(&st.tool, "stage=CaughtUp", 120);
	admin = pgt_connect(&sv.src, "postgres");
	t0 = now_ms();
	while (now_ms() - t0 < 60000)
	{
		PGresult *res = PQexec(admin, "SELECT pg_terminate_backend(active_pid) FROM "
		                              "pg_replication_slots WHERE active_pid IS NOT NULL");

		PQclear(res);
		if (pgt_count_in_file(st.tool.err_path, "gave up") > 0)
			break;
		sleep_ms(200);
	}
	PQfinish(admin);
	rc = tool_wait(&st, 30, &out, &err);
	free(out);
	ck_assert_msg(rc == 1, "exit %d after %lld ms of a walsender killed every 200 ms: ...%s", rc,
	              (long long)(now_ms() - t0), story_tail(err));
	ck_assert_msg(strstr(err, "--reconnect-max-wait") && strstr(err, "stage=Reconnect"), "%s",
	              story_tail(err));
	ck_assert_msg(now_ms() - t0 < 40000, "gave up only after %lld ms", (long long)(now_ms() - t0));
	ck_assert_int_eq(slots(), 1);
	free(err);
	/* the source calm again: --resume, cut over, equal */
	pgt_exec(st.s, "UPDATE orders SET note = 'paid' WHERE id <= 10");
	tool_start(&st, "online", (const char *const[]){"--resume", NULL}, NULL);
	story_expect(&st.tool, "stage=CaughtUp", 120);
	kill(st.tool.pid, SIGINT);
	rc = tool_wait(&st, 120, &out, &err);
	ck_assert_msg(rc == 0, "the resumed run exited %d: ...%s", rc, story_tail(err));
	free(out);
	free(err);
	pgt_assert_same(st.s, st.t, "orders");
	run_end(&st);
}
END_TEST

/*
 * An offline migration whose restore fails: there is no slot, so the way
 * forward must not speak of one ("the slot and the dump are kept").
 */
START_TEST(test_an_offline_failure_does_not_speak_of_a_slot)
{
	run st;
	char *out, *err, log[512], bindir[512], env[600];
	int rc;

	run_begin(&st, "outcome_offline");
	pgt_exec(st.s, "CREATE TABLE items (id int PRIMARY KEY, name text)");
	pgt_exec(st.s, "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g");
	pgt_scratch("offline-tools.log", log, sizeof(log));
	pgt_recording_bindir("offline-bin", log,
	                     "case \"$0\" in *pg_restore) echo 'pg_restore: error: out of disk' >&2; "
	                     "exit 3;; esac",
	                     bindir, sizeof(bindir));
	snprintf(env, sizeof(env), "PG_BINDIR=%s", bindir);
	{
		const char *envs[] = {env, NULL};

		tool_start(&st, "offline", NULL, envs);
	}
	rc = tool_wait(&st, 120, &out, &err);
	free(out);
	ck_assert_msg(rc == 1, "exit %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "--resume"), "%s", story_tail(err));
	ck_assert_msg(strstr(err, "slot") == NULL, "an offline run speaks of a slot: %s",
	              story_tail(err));
	free(err);
	/* the cause fixed: --resume restores the kept dump */
	tool_start(&st, "offline", (const char *const[]){"--resume", NULL}, NULL);
	rc = tool_wait(&st, 120, &out, &err);
	ck_assert_msg(rc == 0, "the resumed run exited %d: ...%s", rc, story_tail(err));
	free(out);
	free(err);
	pgt_assert_same(st.s, st.t, "items");
	run_end(&st);
}
END_TEST

static Suite *
outcomes_suite(void)
{
	const struct
	{
		const char *name;
		const TTest *test;
	} stories[] = {
	    {"differences", test_differences_are_not_a_clean_success},
	    {"strict", test_strict_verification_after_the_cutover_says_what_is_left},
	    {"unverified", test_a_verification_that_cannot_run_is_not_clean},
	    {"unstreamed", test_unlogged_tables_and_large_objects_are_named},
	    {"oversized", test_a_message_larger_than_the_ring_stops_at_once},
	    {"no_progress", test_reconnects_without_progress_give_up},
	    {"offline", test_an_offline_failure_does_not_speak_of_a_slot},
	};
	Suite *s = suite_create("prod_outcomes");

	for (size_t i = 0; i < sizeof(stories) / sizeof(stories[0]); i++)
	{
		TCase *tc = tcase_create(stories[i].name);

		tcase_add_unchecked_fixture(tc, setup, teardown);
		tcase_set_timeout(tc, 300);
		tcase_add_test(tc, stories[i].test);
		suite_add_tcase(s, tc);
	}
	return s;
}

int
main(void)
{
	int rc = story_run_suite(outcomes_suite());

	story_servers_stop(&sv);
	return rc;
}
