/*
 * story.c — the steps the real-server stories share (see story.h).
 *
 * Owns: the admin sessions of a story_servers. Never: asserts what a story
 * is about; a helper fails the test only when its own step cannot be done.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "story.h"

#define STORY_MAX_ARGS 64

void
story_servers_start(story_servers *sv, const char *src_conf)
{
	pgt_start(&sv->src, src_conf);
	pgt_start(&sv->tgt, NULL);
	sv->src_admin = pgt_connect(&sv->src, "postgres");
	sv->tgt_admin = pgt_connect(&sv->tgt, "postgres");
}

void
story_servers_stop(story_servers *sv)
{
	PQfinish(sv->src_admin);
	PQfinish(sv->tgt_admin);
	sv->src_admin = sv->tgt_admin = NULL;
	pgt_stop(&sv->src);
	pgt_stop(&sv->tgt);
}

void
story_connstrs(const story_servers *sv, const char *db, char *src, char *tgt, size_t size)
{
	pgt_connstr(&sv->src, db, src, size);
	pgt_connstr_as(&sv->tgt, db, "app", tgt, size);
}

void
story_app_databases(const story_servers *sv, const char *db)
{
	pgt_owned_database(sv->src_admin, db, "app");
	pgt_owned_database(sv->tgt_admin, db, "app");
}

void
story_fresh_sides(const story_servers *sv, const char *db, char *src, char *tgt, size_t size,
                  PGconn **s, PGconn **t)
{
	story_fresh_sides_in(sv, db, NULL, src, tgt, size, s, t);
}

void
story_fresh_sides_in(const story_servers *sv, const char *db, const char *encoding, char *src,
                     char *tgt, size_t size, PGconn **s, PGconn **t)
{
	char sql[512];

	pgt_fresh_database(sv->src_admin, sv->tgt_admin, db);
	pgt_owned_database(sv->tgt_admin, db, "app");
	if (encoding)
	{
		snprintf(sql, sizeof(sql), "DROP DATABASE \"%s\" WITH (FORCE)", db);
		pgt_exec(sv->src_admin, sql);
		snprintf(sql, sizeof(sql),
		         "CREATE DATABASE \"%s\" ENCODING '%s' LC_COLLATE 'C' LC_CTYPE 'C' "
		         "TEMPLATE template0",
		         db, encoding);
		pgt_exec(sv->src_admin, sql);
	}
	story_connstrs(sv, db, src, tgt, size);
	*s = pgt_connect(&sv->src, db);
	*t = pgt_connect(&sv->tgt, db);
}

/* argv: first, then the words of a and of b (each NULL-terminated, may be NULL). */
static void
story_argv(const char *argv[STORY_MAX_ARGS], const char *first, const char *const a[],
           const char *const b[])
{
	int n = 0;

	argv[n++] = first;
	for (int i = 0; a && a[i]; i++)
	{
		ck_assert_int_lt(n, STORY_MAX_ARGS - 1);
		argv[n++] = a[i];
	}
	for (int i = 0; b && b[i]; i++)
	{
		ck_assert_int_lt(n, STORY_MAX_ARGS - 1);
		argv[n++] = b[i];
	}
	argv[n] = NULL;
}

void
story_tool_start(pgt_proc *p, const char *const args[], const char *const more[],
                 const char *const env[])
{
	const char *argv[STORY_MAX_ARGS];

	story_argv(argv, pgt_tool(), args, more);
	pgt_spawn(p, argv, env);
}

void
story_migrate(pgt_proc *p, const char *mode, const char *src, const char *tgt, const char *dump,
              const char *const more[], const char *const env[])
{
	const char *const args[] = {"--mode", mode,          "--source", src, "--target",
	                            tgt,      "--dump-path", dump,       NULL};

	story_tool_start(p, args, more, env);
}

/* Read what fd has within wait_ms into *buf: 1 read, 0 nothing yet, -1 at its end. */
static int
story_read_some(int fd, int wait_ms, char **buf, size_t *len, size_t *cap)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	ssize_t n;
	int ready = poll(&pfd, 1, wait_ms);

	if (ready < 0)
		return errno == EINTR ? 0 : -1;
	if (ready == 0)
		return 0;
	if (*cap - *len < 65536)
	{
		char *grown = realloc(*buf, *cap * 2);

		ck_assert_ptr_nonnull(grown);
		*buf = grown;
		*cap *= 2;
	}
	n = read(fd, *buf + *len, *cap - *len - 1);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	*len += (size_t)n;
	return n > 0 ? 1 : -1;
}

int
story_finish(pgt_proc *p, int timeout_s, char **out, char **err)
{
	int64_t deadline = story_now_us() + (int64_t)timeout_s * 1000000;
	size_t len = 0, cap = 131072;
	char *text = malloc(cap);
	int got = p->out_fd >= 0 ? 0 : -1;
	int rc;

	ck_assert_ptr_nonnull(text);
	/* until the run closes its stdout (it ends), or its time is up */
	while (got >= 0 && story_now_us() < deadline)
		got = story_read_some(p->out_fd, 100, &text, &len, &cap);
	rc = pgt_wait(p, got >= 0 ? 0 : timeout_s);
	/* the rest of what a killed run wrote, without waiting for a child it left behind */
	while (got >= 0 && (got = story_read_some(p->out_fd, 0, &text, &len, &cap)) > 0)
		;
	text[len] = '\0';
	if (p->out_fd >= 0)
		close(p->out_fd);
	p->out_fd = -1;
	if (out)
		*out = text;
	else
		free(text);
	if (err)
		*err = pgt_stderr(p);
	return rc;
}

void
story_cut_over(pgt_proc *p, int timeout_s, char **out, char **err)
{
	int rc;

	kill(p->pid, SIGINT);
	rc = story_finish(p, timeout_s, out, err);
	ck_assert_msg(rc == 0, "migration exited %d: %s", rc, story_tail(*err));
}

int
story_run(const char *const args[], const char *const env[], int timeout_s, char **out, char **err)
{
	pgt_proc p;

	story_tool_start(&p, args, NULL, env);
	return story_finish(&p, timeout_s, out, err);
}

void
story_kill_9(pgt_proc *p)
{
	kill(p->pid, SIGKILL);
	story_finish(p, 30, NULL, NULL);
}

/* Has the run ended (without reaping it)? */
static bool
story_ended(const pgt_proc *p)
{
	siginfo_t info;

	memset(&info, 0, sizeof(info));
	return waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0;
}

void
story_expect(const pgt_proc *p, const char *needle, int seconds)
{
	bool ended = false;

	for (int i = 0; i < seconds * 10 && !ended; i++)
	{
		if (pgt_count_in_file(p->err_path, needle) > 0)
			return;
		ended = story_ended(p);
		if (!ended)
			usleep(100 * 1000);
	}
	if (pgt_count_in_file(p->err_path, needle) == 0)
	{
		char *log = pgt_stderr(p);

		kill(p->pid, SIGKILL); /* a failed story leaves no run behind */
		ck_abort_msg("%s \"%s\" from the tool: ...%s",
		             ended ? "the run ended without" : "waited in vain for", needle,
		             story_tail(log));
	}
}

const char *
story_tail(const char *text)
{
	size_t n = strlen(text);

	return n > 3000 ? text + n - 3000 : text;
}

void
story_pgbench_start(pgt_proc *p, const char *const args[], const char *const env[])
{
	char pgbench[512];
	const char *argv[STORY_MAX_ARGS];

	story_argv(argv, pgt_bin("pgbench", pgbench, sizeof(pgbench)), args, NULL);
	pgt_spawn(p, argv, env);
}

void
story_pgbench_done(pgt_proc *p, int timeout_s)
{
	char *err;
	int rc = story_finish(p, timeout_s, NULL, &err);

	ck_assert_msg(rc == 0, "pgbench exited %d: %s", rc, story_tail(err));
	free(err);
}

void
story_pgbench_init(const char *connstr)
{
	pgt_proc init;

	story_pgbench_start(&init, (const char *const[]){"-i", "-q", "-s", "1", connstr, NULL}, NULL);
	story_pgbench_done(&init, 120);
}

const char *
story_file(const char *name, const char *text, char *buf, size_t size)
{
	FILE *f;

	pgt_scratch(name, buf, size);
	f = fopen(buf, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return buf;
}

long
story_count(PGconn *conn, const char *from)
{
	char sql[512], buf[32];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", from);
	return atol(pgt_value(conn, sql, buf, sizeof(buf)));
}

void
story_drop_slots(const pgt_cluster *src)
{
	for (int i = 0; i < 50; i++)
	{
		PGconn *c = pgt_connect(src, "postgres");
		PGresult *res = PQexec(c, "SELECT pg_terminate_backend(active_pid) FROM "
		                          "pg_replication_slots WHERE active_pid IS NOT NULL");
		bool done;

		PQclear(res);
		res = PQexec(c, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots");
		done = PQresultStatus(res) == PGRES_TUPLES_OK;
		PQclear(res);
		PQfinish(c);
		if (done)
			return;
		usleep(100 * 1000);
	}
}

void
story_assert_source_clean(PGconn *s)
{
	char buf[64];

	ck_assert_str_eq(pgt_value(s, "SELECT count(*) FROM pg_replication_slots", buf, sizeof(buf)),
	                 "0");
	ck_assert_str_eq(pgt_value(s, "SELECT count(*) FROM pg_publication", buf, sizeof(buf)), "0");
}

void
story_assert_nothing_left(PGconn *s, PGconn *t, const char *publications)
{
	char buf[256];

	ck_assert_str_eq(pgt_value(s, "SELECT count(*) FROM pg_replication_slots", buf, sizeof(buf)),
	                 "0");
	ck_assert_str_eq(
	    pgt_value(s, "SELECT string_agg(pubname, ',' ORDER BY pubname) FROM pg_publication", buf,
	              sizeof(buf)),
	    publications);
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT count(*) FROM pg_namespace WHERE nspname = '_pg_dbmigrator'",
	                           buf, sizeof(buf)),
	                 "0");
}

void
story_publish(PGconn *src, const char *name, const char *tables, const char *with)
{
	char sql[512];

	snprintf(sql, sizeof(sql), "CREATE PUBLICATION %s FOR TABLE %s%s%s", name, tables,
	         with ? " WITH " : "", with ? with : "");
	pgt_exec(src, sql);
	snprintf(sql, sizeof(sql), "SELECT pg_create_logical_replication_slot('%s', 'pgoutput')", name);
	pgt_exec(src, sql);
}

int
story_bench(const char *src, const char *tgt, const char *name, const char *upto,
            const char *const extra[], char **out, char **err)
{
	const char *const args[] = {
	    "bench", "--source",      src,  "--target", tgt,        "--slot-name",
	    name,    "--publication", name, "--json",   "--endpos", upto ? upto : "FFFFFFFF/FFFFFFFF",
	    NULL};
	pgt_proc p;

	story_tool_start(&p, args, extra, NULL);
	return story_finish(&p, 300, out, err);
}

int64_t
story_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
story_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

void
story_sort(double *values, size_t n)
{
	qsort(values, n, sizeof(values[0]), story_cmp_double);
}

void
story_add(TCase *tc, const TTest *test, const char *only_env)
{
	const char *only = only_env ? getenv(only_env) : NULL;

	if (only == NULL || only[0] == '\0' || strstr(test->name, only))
		tcase_add_test(tc, test);
}

/* The plan of the suite being run (Check's fixtures take no argument; one suite runs at a time). */
static const story_plan *story_running;

static void
story_fixture_setup(void)
{
	if (story_running->servers)
		story_servers_start(story_running->servers, story_running->src_conf);
	if (story_running->setup)
		story_running->setup();
}

static void
story_fixture_teardown(void)
{
	if (story_running->teardown)
		story_running->teardown();
	if (story_running->servers)
		story_servers_stop(story_running->servers);
}

Suite *
story_suite(const story_plan *plan, const TTest *const stories[])
{
	Suite *s = suite_create(plan->suite);
	TCase *tc = tcase_create(plan->tcase);

	story_running = plan;
	tcase_add_unchecked_fixture(tc, story_fixture_setup, story_fixture_teardown);
	if (plan->before || plan->after)
		tcase_add_checked_fixture(tc, plan->before, plan->after);
	tcase_set_timeout(tc, plan->timeout_s);
	for (int i = 0; stories[i]; i++)
		story_add(tc, stories[i], plan->only_env);
	suite_add_tcase(s, tc);
	return s;
}

int
story_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
