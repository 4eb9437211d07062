/*
 * check_compat.c — users coming from the tools pg_dbmigrator replaces type
 * their old command lines, and they work here (issue 19). The target is
 * reached as the NOSUPERUSER role "app" that owns its database.
 *
 * The stories:
 *  - the Rust pg_dbmigrator's README offline command line, with its filter
 *    flags and a pg_dump compression spec (gzip:5): the target equals the
 *    source but for what was excluded, pg_dump got --compress=5, and stderr,
 *    not a terminal, has plain lines only (no \r, no escape sequence);
 *  - a compression the installed pg_dump cannot do (zstd:3 with pg_dump 15)
 *    is refused up front with what to use instead (with pg_dump 16+ it runs);
 *  - the README's online command line (--subscription-name, a publication
 *    created by hand FOR ALL TABLES) run on a pseudo-terminal as an operator
 *    would: it says once that it creates no subscription, shows one status
 *    line redrawn in place (lag, row changes/s, what is being applied)
 *    instead of Lag lines, cuts over on Ctrl+C and leaves the hand-made
 *    publication alone;
 *  - pg-migrate's --from-host/--from-port/--from-user/--from-pass/--from-db,
 *    --to-*, --dump-root and -j name the servers; the password reaches no
 *    child's argv and no log line;
 *  - an offline run through a dump on a terminal draws a Dump bar and a
 *    Restore bar, each ending full on its own line;
 *  - --json on a terminal: the same events as before, Lag included, and no
 *    line drawn in place.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgtest.h"
#include "story.h"

static story_servers sv;

/* A small application: orders, and the audit and log tables the README's filters leave out. */
static void
build_source(PGconn *s)
{
	pgt_exec(s, "CREATE TABLE customers (id serial PRIMARY KEY, name text);"
	            "CREATE TABLE orders (id serial PRIMARY KEY, customer int NOT NULL REFERENCES "
	            "customers, total numeric);"
	            "CREATE TABLE large_log (id bigserial PRIMARY KEY, line text);"
	            "CREATE SCHEMA audit; CREATE TABLE audit.trail (id int PRIMARY KEY);"
	            "INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 200) g;"
	            "INSERT INTO orders (customer, total) SELECT 1 + g % 200, g FROM "
	            "generate_series(1, 5000) g;"
	            "INSERT INTO large_log (line) SELECT 'l' || g FROM generate_series(1, 1000) g;"
	            "INSERT INTO audit.trail VALUES (1)");
}

/* The URIs the README writes: the source as postgres, the target as app. */
static void
uris(const char *db, char *src, char *tgt, size_t size)
{
	snprintf(src, size, "postgresql://postgres@127.0.0.1:%d/%s", sv.src.port, db);
	snprintf(tgt, size, "postgresql://app@127.0.0.1:%d/%s", sv.tgt.port, db);
}

/* The installed pg_dump's major version. */
static int
pg_dump_major(void)
{
	char path[1024], cmd[1100], line[256] = "";
	FILE *p;

	snprintf(cmd, sizeof(cmd), "'%s' --version", pgt_bin("pg_dump", path, sizeof(path)));
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	if (fgets(line, sizeof(line), p) == NULL)
		line[0] = '\0';
	pclose(p);
	return atoi(strpbrk(line, "0123456789") ? strpbrk(line, "0123456789") : "0");
}

START_TEST(the_rust_tools_offline_command_line_migrates_with_its_filters_and_compression)
{
	char src[256], tgt[256], dump[512], log[512], bindir[512], env[600], v[128];
	PGconn *s, *t;
	pgt_proc tool;
	char *out, *err, *argv_log;
	int rc;

	story_app_databases(&sv, "compat_off");
	uris("compat_off", src, tgt, sizeof(src));
	s = pgt_connect(&sv.src, "compat_off");
	build_source(s);
	pgt_scratch("compat-off-dump", dump, sizeof(dump));
	pgt_scratch("compat-off-argv.log", log, sizeof(log));
	pgt_recording_bindir("compat-off-bin", log, NULL, bindir, sizeof(bindir));
	snprintf(env, sizeof(env), "PG_BINDIR=%s", bindir);
	/* the README's offline line, its filtering example's flags, and a pg_dump 16 style spec */
	story_migrate(&tool, "offline", src, tgt, dump,
	              (const char *const[]){"--jobs", "4", "--drop-target-first", "--exclude-schema",
	                                    "audit", "--exclude-table", "public.large_log",
	                                    "--compress", "gzip:5", "--no-owner", NULL},
	              (const char *const[]){env, NULL});
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "the README's offline command line exited %d: %s", rc, story_tail(err));
	t = pgt_connect_as(&sv.tgt, "compat_off", "app");
	pgt_assert_same(s, t, "customers");
	pgt_assert_same(s, t, "orders");
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT count(*) FROM pg_class WHERE relname IN ('large_log', "
	                           "'trail') OR relnamespace = (SELECT oid FROM pg_namespace WHERE "
	                           "nspname = 'audit')",
	                           v, sizeof(v)),
	                 "0");
	argv_log = pgt_read_file(log);
	ck_assert_msg(strstr(argv_log, "--compress=5"), "pg_dump got no --compress=5: %s", argv_log);
	/* not a terminal: plain lines, nothing drawn in place */
	ck_assert_msg(strchr(err, '\r') == NULL && strchr(err, '\033') == NULL,
	              "terminal codes in a log: %s", story_tail(err));
	ck_assert_msg(strstr(err, "stage=Complete"), "no Complete: %s", story_tail(err));
	free(argv_log);
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(a_compression_the_installed_pg_dump_cannot_do_is_refused_with_what_to_use)
{
	char src[256], tgt[256], dump[512];
	int major = pg_dump_major(), rc;
	PGconn *s;
	pgt_proc tool;
	char *out, *err;

	story_app_databases(&sv, "compat_zstd");
	uris("compat_zstd", src, tgt, sizeof(src));
	s = pgt_connect(&sv.src, "compat_zstd");
	pgt_exec(s, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)");
	pgt_scratch("compat-zstd-dump", dump, sizeof(dump));
	story_migrate(
	    &tool, "offline", src, tgt, dump,
	    (const char *const[]){"--compress", "zstd:3", "--copy-method", "dump", "--no-owner", NULL},
	    NULL);
	rc = story_finish(&tool, 120, &out, &err);
	if (major >= 16)
		ck_assert_msg(rc == 0, "zstd:3 with pg_dump %d exited %d: %s", major, rc, story_tail(err));
	else
	{
		ck_assert_msg(rc == 1, "zstd:3 with pg_dump %d exited %d: %s", major, rc, story_tail(err));
		ck_assert_msg(strstr(err, "--compress zstd:3 needs pg_dump 16 or newer") &&
		                  strstr(err, "use --compress gzip:LEVEL"),
		              "no reason and way out: %s", story_tail(err));
		/* refused before anything was dumped */
		ck_assert_msg(access(dump, F_OK) != 0, "a dump directory was made");
	}
	free(out);
	free(err);
	PQfinish(s);
}
END_TEST

/* A run on a pseudo-terminal: what its terminal shows, read as it comes. */
typedef struct pty_run
{
	pid_t pid;
	int fd;     /* the terminal's master side */
	char *text; /* malloc'd: everything it showed */
	size_t len, cap;
	bool eof;
} pty_run;

/* Start argv on a new 200-column pseudo-terminal (stdin, stdout and stderr). */
static void
pty_start(pty_run *r, const char *const argv[])
{
	struct winsize ws = {.ws_row = 40, .ws_col = 200};

	memset(r, 0, sizeof(*r));
	r->cap = 65536;
	r->text = malloc(r->cap);
	ck_assert_ptr_nonnull(r->text);
	r->text[0] = '\0';
	fflush(NULL);
	r->pid = forkpty(&r->fd, NULL, NULL, &ws);
	ck_assert_msg(r->pid >= 0, "forkpty: %s", strerror(errno));
	if (r->pid == 0)
	{
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
}

/* Read what the terminal shows within wait_ms. */
static void
pty_read(pty_run *r, int wait_ms)
{
	struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
	ssize_t n;

	if (r->eof || poll(&pfd, 1, wait_ms) <= 0)
		return;
	if (r->len + 4097 > r->cap)
	{
		r->cap *= 2;
		r->text = realloc(r->text, r->cap);
		ck_assert_ptr_nonnull(r->text);
	}
	n = read(r->fd, r->text + r->len, 4096);
	if (n <= 0) /* EIO: every holder of the terminal's other side is gone */
		r->eof = true;
	else
		r->len += (size_t)n;
	r->text[r->len] = '\0';
}

/* Wait up to seconds for needle on the terminal (the run killed and the test failed if not). */
static void
pty_expect(pty_run *r, const char *needle, int seconds)
{
	int64_t deadline = story_now_us() + (int64_t)seconds * 1000000;

	while (strstr(r->text, needle) == NULL && !r->eof && story_now_us() < deadline)
		pty_read(r, 100);
	if (strstr(r->text, needle) == NULL)
	{
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		ck_abort_msg("no \"%s\" on the terminal: %s", needle, story_tail(r->text));
	}
}

/* Read to the end and reap: the exit code (-1: not within timeout_s, killed). */
static int
pty_finish(pty_run *r, int timeout_s)
{
	int64_t deadline = story_now_us() + (int64_t)timeout_s * 1000000;
	int status;

	while (!r->eof && story_now_us() < deadline)
		pty_read(r, 100);
	if (!r->eof)
		kill(r->pid, SIGKILL);
	close(r->fd);
	if (waitpid(r->pid, &status, 0) != r->pid)
		return -1;
	return !r->eof ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* What the terminal showed, into the scratch file name (for a reader of a failure). */
static void
pty_keep(const pty_run *r, const char *name)
{
	char path[512];
	FILE *f = fopen(pgt_scratch(name, path, sizeof(path)), "w");

	if (f)
	{
		fwrite(r->text, 1, r->len, f);
		fclose(f);
	}
}

/* How many times needle is in text. */
static int
occurrences(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

START_TEST(the_rust_tools_online_command_line_on_a_terminal_shows_one_live_status_line)
{
	char src[256], tgt[256], dump[512];
	PGconn *s, *t;
	pty_run run;
	int rc;

	story_app_databases(&sv, "compat_on");
	uris("compat_on", src, tgt, sizeof(src));
	s = pgt_connect(&sv.src, "compat_on");
	build_source(s);
	/* as the README has the operator do on the source first */
	pgt_exec(s, "CREATE PUBLICATION pg_dbmigrator_pub FOR ALL TABLES");
	pgt_scratch("compat-on-dump", dump, sizeof(dump));
	pty_start(&run, (const char *const[]){pgt_tool(),
	                                      "--mode",
	                                      "online",
	                                      "--source",
	                                      src,
	                                      "--target",
	                                      tgt,
	                                      "--slot-name",
	                                      "pg_dbmigrator_slot",
	                                      "--publication",
	                                      "pg_dbmigrator_pub",
	                                      "--subscription-name",
	                                      "pg_dbmigrator_sub",
	                                      "--jobs",
	                                      "4",
	                                      "--lag-threshold-bytes",
	                                      "8192",
	                                      "--cutover-poll-secs",
	                                      "5",
	                                      "--dump-path",
	                                      dump,
	                                      "--no-owner",
	                                      NULL});
	pty_expect(&run, "stage=CaughtUp", 120);
	/* the application writes while the operator watches the line */
	for (int i = 0; i < 30; i++)
	{
		pgt_exec(s, "INSERT INTO orders (customer, total) SELECT 1 + g % 200, g FROM "
		            "generate_series(1, 200) g; UPDATE customers SET name = name || '+' WHERE "
		            "id % 7 = 0");
		pty_read(&run, 100);
	}
	/* two redraws in place: the erase of one draw, then the \r of the next */
	pty_expect(&run, "\033[K\rStreaming", 30);
	pty_expect(&run, "row changes/s", 5);
	kill(run.pid, SIGINT);
	rc = pty_finish(&run, 120);
	pty_keep(&run, "compat-on-terminal.txt");
	ck_assert_msg(rc == 0, "the README's online command line exited %d: %s", rc,
	              story_tail(run.text));
	ck_assert_msg(occurrences(run.text, "creates no subscription") == 1,
	              "not said once that no subscription is made: %s", story_tail(run.text));
	ck_assert_msg(strstr(run.text, "stage=Lag") == NULL, "Lag lines on a terminal: %s",
	              story_tail(run.text));
	ck_assert_msg(occurrences(run.text, "\rStreaming") >= 2, "the status line never updated: %s",
	              story_tail(run.text));
	ck_assert_msg(strstr(run.text, "lag ") && strstr(run.text, " s | "),
	              "no lag in bytes and seconds: %s", story_tail(run.text));
	/* an event after the line starts on a line of its own: the line is erased first */
	ck_assert_msg(strstr(run.text, "\r\033[KINFO stage=Cutover"),
	              "the Cutover event did not replace the status line: %s", story_tail(run.text));
	ck_assert_msg(strstr(run.text, "stage=Complete"), "no Complete: %s", story_tail(run.text));
	t = pgt_connect_as(&sv.tgt, "compat_on", "app");
	pgt_assert_same(s, t, "orders");
	pgt_assert_same(s, t, "customers");
	/* the hand-made publication is the operator's: kept; the slot is gone */
	story_assert_nothing_left(s, t, "pg_dbmigrator_pub");
	pgt_exec(s, "DROP PUBLICATION pg_dbmigrator_pub");
	free(run.text);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/* --json on a terminal: the events as before, Lag included, and no line drawn in place. */
START_TEST(json_on_a_terminal_is_unchanged)
{
	char src[256], tgt[256], dump[512];
	PGconn *s;
	pty_run run;
	int rc;

	story_app_databases(&sv, "compat_json");
	uris("compat_json", src, tgt, sizeof(src));
	s = pgt_connect(&sv.src, "compat_json");
	build_source(s);
	pgt_scratch("compat-json-dump", dump, sizeof(dump));
	pty_start(&run, (const char *const[]){pgt_tool(), "--mode", "online", "--source", src,
	                                      "--target", tgt, "--json", "--cutover-poll-secs", "1",
	                                      "--max-runtime-seconds", "4", "--dump-path", dump,
	                                      "--no-owner", NULL});
	rc = pty_finish(&run, 120);
	pty_keep(&run, "compat-json-terminal.txt");
	ck_assert_msg(rc == 0, "the --json run exited %d: %s", rc, story_tail(run.text));
	ck_assert_msg(strstr(run.text, "\"stage\":\"Lag\"") && strstr(run.text, "INFO stage=Lag"),
	              "no Lag events with --json: %s", story_tail(run.text));
	ck_assert_msg(strstr(run.text, "\033[K") == NULL && strstr(run.text, "Streaming:") == NULL,
	              "a status line with --json: %s", story_tail(run.text));
	free(run.text);
	PQfinish(s);
}
END_TEST

/* An offline run through a dump on a terminal: a bar for the Dump and one for the Restore. */
START_TEST(a_dump_and_restore_on_a_terminal_show_their_bars)
{
	char src[256], tgt[256], dump[512];
	PGconn *s, *t;
	pty_run run;
	int rc;

	story_app_databases(&sv, "compat_bars");
	uris("compat_bars", src, tgt, sizeof(src));
	s = pgt_connect(&sv.src, "compat_bars");
	build_source(s);
	pgt_scratch("compat-bars-dump", dump, sizeof(dump));
	pty_start(&run, (const char *const[]){pgt_tool(), "--mode", "offline", "--source", src,
	                                      "--target", tgt, "--copy-method", "dump", "--jobs", "2",
	                                      "--dump-path", dump, "--no-owner", NULL});
	rc = pty_finish(&run, 120);
	pty_keep(&run, "compat-bars-terminal.txt");
	ck_assert_msg(rc == 0, "the offline run exited %d: %s", rc, story_tail(run.text));
	/* each bar ends full, on a line of its own, with the bytes the dump wrote */
	ck_assert_msg(strstr(run.text, "\rDump [##############################] 4/4 tables begun, ") &&
	                  strstr(run.text, " MB written, "),
	              "no full Dump bar: %s", story_tail(run.text));
	ck_assert_msg(strstr(run.text, "\rRestore [##############################] 4/4 tables begun, "),
	              "no full Restore bar: %s", story_tail(run.text));
	ck_assert_msg(strstr(run.text, "of 4 tables") == NULL, "the old counter too: %s",
	              story_tail(run.text));
	t = pgt_connect_as(&sv.tgt, "compat_bars", "app");
	pgt_assert_same(s, t, "orders");
	free(run.text);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(pg_migrates_connection_options_name_the_servers_and_hide_the_password)
{
	char sport[16], tport[16], root[512], log[512], bindir[512], env[600];
	PGconn *s, *t;
	pgt_proc tool;
	char *out, *err, *argv_log;
	int rc;

	story_app_databases(&sv, "compat_pgm");
	s = pgt_connect(&sv.src, "compat_pgm");
	build_source(s);
	snprintf(sport, sizeof(sport), "%d", sv.src.port);
	snprintf(tport, sizeof(tport), "%d", sv.tgt.port);
	pgt_scratch("compat-pgm-root", root, sizeof(root));
	pgt_scratch("compat-pgm-argv.log", log, sizeof(log));
	pgt_recording_bindir("compat-pgm-bin", log, NULL, bindir, sizeof(bindir));
	snprintf(env, sizeof(env), "PG_BINDIR=%s", bindir);
	story_tool_start(&tool,
	                 (const char *const[]){"--mode",      "offline",   "--from-host", "127.0.0.1",
	                                       "--from-port", sport,       "--from-user", "postgres",
	                                       "--from-pass", "secret123", "--from-db",   "compat_pgm",
	                                       "--to-host",   "127.0.0.1", "--to-port",   tport,
	                                       "--to-user",   "app",       "--to-db",     "compat_pgm",
	                                       "--dump-root", root,        "-j",          "2",
	                                       "--no-owner",  NULL},
	                 NULL, (const char *const[]){env, NULL});
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "pg-migrate's options exited %d: %s", rc, story_tail(err));
	t = pgt_connect_as(&sv.tgt, "compat_pgm", "app");
	pgt_assert_same(s, t, "orders");
	pgt_assert_same(s, t, "large_log");
	pgt_assert_same(s, t, "audit.trail");
	argv_log = pgt_read_file(log);
	ck_assert_msg(strstr(argv_log, "argv: ") && strstr(argv_log, "secret123") == NULL,
	              "the password in a child's argv: %s", argv_log);
	ck_assert_msg(strstr(err, "secret123") == NULL && strstr(out, "secret123") == NULL,
	              "the password in the log: %s", story_tail(err));
	ck_assert_msg(strstr(err, "~/.pgpass"), "no advice on --from-pass: %s", story_tail(err));
	free(argv_log);
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

int
main(void)
{
	const story_plan plan = {"compat", "compat", 240, &sv, STORY_SOURCE_CONF};
	const TTest *const stories[] = {
	    the_rust_tools_offline_command_line_migrates_with_its_filters_and_compression,
	    a_compression_the_installed_pg_dump_cannot_do_is_refused_with_what_to_use,
	    the_rust_tools_online_command_line_on_a_terminal_shows_one_live_status_line,
	    pg_migrates_connection_options_name_the_servers_and_hide_the_password,
	    a_dump_and_restore_on_a_terminal_show_their_bars,
	    json_on_a_terminal_is_unchanged,
	    NULL};

	return story_run_suite(story_suite(&plan, stories));
}
