/*
 * check_security.c — what a security reviewer asks of pg_dbmigrator, against
 * real servers that accept TCP connections only over TLS and ask one role
 * for a SCRAM password.
 *
 * The stories:
 *  - an online migration with sslmode=verify-full on both sides, under
 *    writers: the walsender, the tool's regular source connection and its
 *    apply connection on the target all run over TLS, and the cutover leaves
 *    equal tables; the same migration against a server whose certificate
 *    another CA signed fails closed, before anything is created on the source,
 *    with a message about the certificate;
 *  - a password given in a URI, in PGPASSWORD or in a .pgpass file never
 *    shows up in a child's argv, a log line, a --json event, the resume token
 *    (left behind by a kill -9 during the apply), the dump, `status` in either
 *    form, or a message about a connection that failed or a string that did
 *    not parse;
 *  - run under umask 022, the dump directory is 0700, and the dump's files,
 *    the resume token and the saved settings of --fast-restore-settings are
 *    for the tool's user only.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgtest.h"
#include "story.h"

static pgt_cluster src_server, tgt_server;
static PGconn *src_admin, *tgt_admin;
static char tls_dir[512]; /* the CAs and the server's certificate (scratch, ours) */

/*
 * TCP only over TLS; "migrator" must give its SCRAM password, everybody else
 * (the test, as postgres) is trusted.
 */
static const char hba_rules[] = "local all all trust\n"
                                "hostssl all migrator 127.0.0.1/32 scram-sha-256\n"
                                "hostssl replication migrator 127.0.0.1/32 scram-sha-256\n"
                                "hostssl all all 127.0.0.1/32 trust\n"
                                "hostssl replication all 127.0.0.1/32 trust\n";

/* A CA, a server certificate for localhost and 127.0.0.1 it signed, and another CA. */
static void
make_certificates(void)
{
	char cmd[2048], log[600];
	int rc;

	pgt_scratch("tls", tls_dir, sizeof(tls_dir));
	mkdir(tls_dir, 0700);
	snprintf(log, sizeof(log), "%s/openssl.log", tls_dir);
	snprintf(cmd, sizeof(cmd),
	         "set -e; cd '%s'; exec >openssl.log 2>&1; "
	         "key='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'; "
	         "openssl req -x509 $key -days 2 -subj '/CN=pgdbm test CA' -keyout ca.key -out ca.crt; "
	         "openssl req -x509 $key -days 2 -subj '/CN=pgdbm other CA' -keyout other.key "
	         "-out other.crt; "
	         "openssl req -new $key -subj '/CN=localhost' -keyout server.key -out server.csr; "
	         "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext; "
	         "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
	         "-extfile san.ext -out server.crt",
	         tls_dir);
	rc = system(cmd);
	if (rc != 0)
	{
		char *text = pgt_read_file(log);

		ck_abort_msg("could not make the test certificates (is openssl installed? run "
		             "scripts/setup): %s",
		             text ? text : "(no log)");
	}
}

/* ssl = on with the server certificate, and the rules above. */
static void
require_tls(pgt_cluster *c)
{
	char from[600], crt[600], key[600], conf[1400];

	snprintf(from, sizeof(from), "%s/server.crt", tls_dir);
	pgt_server_file(c, from, "server.crt", 0644, crt, sizeof(crt));
	snprintf(from, sizeof(from), "%s/server.key", tls_dir);
	pgt_server_file(c, from, "server.key", 0600, key, sizeof(key));
	snprintf(conf, sizeof(conf), "ssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\n", crt, key);
	pgt_configure(c, conf, hba_rules);
}

static void
setup(void)
{
	make_certificates();
	pgt_start(&src_server, NULL);
	pgt_start(&tgt_server, NULL);
	require_tls(&src_server);
	require_tls(&tgt_server);
}

static void
teardown(void)
{
	pgt_stop(&src_server);
	pgt_stop(&tgt_server);
}

/* Per test (each runs in its own process): a TLS session cannot be shared by two. */
static void
connect_admins(void)
{
	src_admin = pgt_connect(&src_server, "postgres");
	tgt_admin = pgt_connect(&tgt_server, "postgres");
	pgt_exec(src_admin, "SET client_min_messages = warning");
	pgt_exec(tgt_admin, "SET client_min_messages = warning");
}

static void
disconnect_admins(void)
{
	PQfinish(src_admin);
	PQfinish(tgt_admin);
}

/* Run the tool to its end: exit code, stdout and stderr (malloc'd). */
static int
run_tool(const char *const argv[], const char *const env[], char **out, char **err)
{
	pgt_proc p;

	pgt_spawn(&p, argv, env);
	return story_finish(&p, 120, out, err);
}

/* Does the file at path hold needle anywhere (binary files too)? */
static bool
file_holds(const char *path, const char *needle)
{
	FILE *f = fopen(path, "rb");
	size_t len = strlen(needle);
	char buf[65536];
	size_t have = 0, n;
	bool found = false;

	ck_assert_msg(f != NULL, "cannot read %s", path);
	ck_assert(len > 0 && len < 1024);
	/* keep the last len - 1 bytes of each block: a needle may straddle two */
	while (!found && (n = fread(buf + have, 1, sizeof(buf) - have, f)) > 0)
	{
		have += n;
		found = memmem(buf, have, needle, len) != NULL;
		if (have >= len)
		{
			memmove(buf, buf + have - (len - 1), len - 1);
			have = len - 1;
		}
	}
	fclose(f);
	return found;
}

/* <dump>.resume.json, as the tool names it. */
static const char *
token_path(const char *dump, char *buf, size_t size)
{
	snprintf(buf, size, "%s.resume.json", dump);
	return buf;
}

/* Fail if any file in dir (one level: a directory-format dump) holds secret; the count. */
static int
assert_dir_clean(const char *dir, const char *secret)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int files = 0;

	ck_assert_msg(d != NULL, "no dump directory %s", dir);
	while ((de = readdir(d)) != NULL)
	{
		char path[1024];

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		ck_assert_msg(!file_holds(path, secret), "%s holds the password", path);
		files++;
	}
	closedir(d);
	return files;
}

/* Fail unless the file at path has no bits for group and other. */
static void
assert_private(const char *path)
{
	struct stat st;

	ck_assert_msg(stat(path, &st) == 0, "%s is missing", path);
	ck_assert_msg((st.st_mode & 077) == 0, "%s has mode %04o: others may read it", path,
	              (unsigned)(st.st_mode & 07777));
}

/* Fail if text (what names it) holds secret. */
static void
assert_clean(const char *what, const char *text, const char *secret)
{
	ck_assert_msg(strstr(text, secret) == NULL, "%s holds the password: %s", what, text);
}

/* Set migrator's password on both servers. */
static void
set_password(const char *password)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "ALTER ROLE migrator PASSWORD '%s'", password);
	pgt_exec(src_admin, sql);
	pgt_exec(tgt_admin, sql);
}

START_TEST(verify_full_tls_on_every_connection_and_a_wrong_ca_fails_closed)
{
	char src[1024], tgt[1024], plain[256], ca[600], other_ca[600], dump[512], script[512];
	char buf[128];
	PGconn *s, *t, *c;
	pgt_proc writers, tool;
	char *out, *err;
	int rc, walsenders, clients, plain_ones;

	pgt_fresh_database(src_admin, tgt_admin, "tls");
	snprintf(ca, sizeof(ca), "%s/ca.crt", tls_dir);
	snprintf(other_ca, sizeof(other_ca), "%s/other.crt", tls_dir);
	s = pgt_connect(&src_server, "tls");
	t = pgt_connect(&tgt_server, "tls");
	/* the servers refuse TCP without TLS */
	snprintf(plain, sizeof(plain),
	         "host=127.0.0.1 port=%d user=postgres dbname=tls sslmode=disable", src_server.port);
	c = PQconnectdb(plain);
	ck_assert_msg(PQstatus(c) != CONNECTION_OK, "the source accepted a connection without TLS");
	PQfinish(c);

	pgt_exec(s, "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)");
	pgt_exec(s, "CREATE TABLE history (id bigserial PRIMARY KEY, aid int, delta int)");
	pgt_exec(s, "INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 100) g");
	story_file("tls.sql",
	           "\\set aid random(1, 100)\n"
	           "\\set delta random(-500, 500)\n"
	           "BEGIN;\n"
	           "UPDATE accounts SET balance = balance + :delta WHERE id = :aid;\n"
	           "INSERT INTO history (aid, delta) VALUES (:aid, :delta);\n"
	           "END;\n",
	           script, sizeof(script));
	story_pgbench_start(&writers,
	                    (const char *const[]){"-n", "-c", "2", "-T", "6", "-f", script,
	                                          pgt_connstr(&src_server, "tls", buf, sizeof(buf)),
	                                          NULL},
	                    NULL);
	/* host=localhost: the name the certificate is checked against */
	snprintf(src, sizeof(src),
	         "host=localhost port=%d user=postgres dbname=tls sslmode=verify-full "
	         "sslrootcert='%s' application_name=pgdbm_tls",
	         src_server.port, ca);
	snprintf(tgt, sizeof(tgt),
	         "host=localhost port=%d user=postgres dbname=tls sslmode=verify-full "
	         "sslrootcert='%s' application_name=pgdbm_tls",
	         tgt_server.port, ca);
	pgt_scratch("tls-dump", dump, sizeof(dump));
	story_migrate(&tool, "online", src, tgt, dump,
	              (const char *const[]){"--cutover-poll-secs", "1", NULL}, NULL);
	story_expect(&tool, "stage=CaughtUp", 60);
	/* while it streams: every connection of the tool runs over TLS */
	pgt_value(s,
	          "SELECT format('%s %s %s', count(*) FILTER (WHERE a.backend_type = 'walsender' AND "
	          "s.ssl), count(*) FILTER (WHERE a.backend_type = 'client backend' AND s.ssl), "
	          "count(*) FILTER (WHERE NOT s.ssl)) FROM pg_stat_activity a JOIN pg_stat_ssl s "
	          "USING (pid) WHERE a.application_name = 'pgdbm_tls'",
	          buf, sizeof(buf));
	ck_assert_msg(sscanf(buf, "%d %d %d", &walsenders, &clients, &plain_ones) == 3 &&
	                  walsenders >= 1 && clients >= 1 && plain_ones == 0,
	              "on the source, walsenders and clients over TLS, connections without: %s", buf);
	pgt_value(t,
	          "SELECT format('%s %s', count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT "
	          "s.ssl)) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE "
	          "a.application_name = 'pgdbm_tls' AND a.backend_type = 'client backend'",
	          buf, sizeof(buf));
	ck_assert_msg(sscanf(buf, "%d %d", &clients, &plain_ones) == 2 && clients >= 1 &&
	                  plain_ones == 0,
	              "on the target, clients over TLS, connections without: %s", buf);
	story_pgbench_done(&writers, 60);
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %s", rc, err);
	pgt_assert_same(s, t, "accounts");
	pgt_assert_same(s, t, "history");
	free(out);
	free(err);

	/* a server certificate another CA signed: first the source's, then the target's */
	for (int side = 0; side < 2; side++)
	{
		char bad[1024];
		const char *where = side == 0 ? "source" : "target";

		snprintf(bad, sizeof(bad),
		         "host=localhost port=%d user=postgres dbname=tls sslmode=verify-full "
		         "sslrootcert='%s'",
		         side == 0 ? src_server.port : tgt_server.port, other_ca);
		pgt_scratch(side == 0 ? "badca-src-dump" : "badca-tgt-dump", dump, sizeof(dump));
		{
			const char *argv[] = {pgt_tool(),
			                      "--mode",
			                      "online",
			                      "--source",
			                      side == 0 ? bad : src,
			                      "--target",
			                      side == 1 ? bad : tgt,
			                      "--dump-path",
			                      dump,
			                      NULL};

			rc = run_tool(argv, NULL, &out, &err);
		}
		ck_assert_msg(rc == 1 || rc == 2, "a wrong CA for the %s: exit %d: %s", where, rc, err);
		ck_assert_msg(strstr(err, "certificate"),
		              "a wrong CA for the %s, no word of the "
		              "certificate: %s",
		              where, err);
		story_assert_source_clean(s);
		free(out);
		free(err);
	}
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(no_password_leaks_from_a_uri_pgpassword_or_a_pgpass_file)
{
	const char *in_uri = "Uri-s3cret-9f", *in_env = "Env-s3cret-4k", *in_file = "File-s3cret-7q";
	char src[512], tgt[512], src_nopw[512], tgt_nopw[512], dump[512], argv_log[512], bindir[512];
	char bindir_env[600], pw_env[128], passfile[512], passfile_env[600], nopass_env[600];
	char token[600], buf[64];
	PGconn *s, *t, *c;
	pgt_proc tool;
	char *out, *err, *text;
	int rc;
	FILE *f;

	pgt_fresh_database(src_admin, tgt_admin, "pw");
	pgt_exec(src_admin, "DROP ROLE IF EXISTS migrator");
	pgt_exec(tgt_admin, "DROP ROLE IF EXISTS migrator");
	pgt_exec(src_admin, "CREATE ROLE migrator LOGIN SUPERUSER REPLICATION");
	pgt_exec(tgt_admin, "CREATE ROLE migrator LOGIN SUPERUSER REPLICATION");
	set_password(in_uri);
	s = pgt_connect(&src_server, "pw");
	t = pgt_connect(&tgt_server, "pw");
	pgt_exec(s, "CREATE TABLE t (id int PRIMARY KEY, v text)");
	pgt_exec(s, "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g");
	/* no ~/.pgpass of whoever runs the tests gets in the way */
	pgt_scratch("no-pgpass", passfile, sizeof(passfile));
	snprintf(nopass_env, sizeof(nopass_env), "PGPASSFILE=%s", passfile);
	/* the role really needs its password over TCP */
	snprintf(src_nopw, sizeof(src_nopw), "postgresql://migrator@127.0.0.1:%d/pw", src_server.port);
	snprintf(tgt_nopw, sizeof(tgt_nopw), "postgresql://migrator@127.0.0.1:%d/pw", tgt_server.port);
	setenv("PGPASSFILE", passfile, 1);
	unsetenv("PGPASSWORD");
	c = PQconnectdb(src_nopw);
	ck_assert_msg(PQstatus(c) != CONNECTION_OK && strstr(PQerrorMessage(c), "password"),
	              "migrator got in without a password: %s", PQerrorMessage(c));
	PQfinish(c);

	pgt_scratch("pw-argv.log", argv_log, sizeof(argv_log));
	pgt_recording_bindir("pw-bin", argv_log, NULL, bindir, sizeof(bindir));
	snprintf(bindir_env, sizeof(bindir_env), "PG_BINDIR=%s", bindir);

	/* 1. in the URI: an online run, killed -9 while it applies */
	snprintf(src, sizeof(src), "postgresql://migrator:%s@127.0.0.1:%d/pw", in_uri, src_server.port);
	snprintf(tgt, sizeof(tgt), "postgresql://migrator:%s@127.0.0.1:%d/pw", in_uri, tgt_server.port);
	pgt_scratch("pw-dump", dump, sizeof(dump));
	{
		const char *argv[] = {
		    pgt_tool(), "--mode", "online",      "--source", src,
		    "--target", tgt,      "--dump-path", dump,       "--cutover-poll-secs",
		    "1",        "--json", NULL};
		const char *env[] = {bindir_env, nopass_env, NULL};

		pgt_spawn(&tool, argv, env);
	}
	story_expect(&tool, "stage=CaughtUp", 60);
	pgt_exec(s, "INSERT INTO t SELECT g, 'streamed' FROM generate_series(101, 200) g");
	/* the children's argv, as their wrappers saw it: what /proc/<pid>/cmdline showed */
	text = pgt_read_file(argv_log);
	ck_assert_msg(text && strstr(text, "argv: ") && strstr(text, "PGPASSWORD set: yes"),
	              "the children did not run as expected: %s", text ? text : "(no log)");
	assert_clean("a child's argv", text, in_uri);
	free(text);
	/* status, from another terminal that knows the password through PGPASSWORD */
	snprintf(pw_env, sizeof(pw_env), "PGPASSWORD=%s", in_uri);
	for (int json = 0; json < 2; json++)
	{
		const char *argv[] = {pgt_tool(), "status", "--dump-path", dump, json ? "--json" : NULL,
		                      NULL};
		const char *env[] = {pw_env, nopass_env, NULL};

		rc = run_tool(argv, env, &out, &err);
		ck_assert_msg(rc == 0, "status exited %d: %s", rc, err);
		ck_assert_msg(strstr(out, json ? "\"slot_present\":true" : "present"),
		              "status did not reach the source: %s", out);
		assert_clean("status", out, in_uri);
		assert_clean("status's stderr", err, in_uri);
		free(out);
		free(err);
	}
	/* ...and one that does not know it: it says why, without a password */
	{
		const char *argv[] = {pgt_tool(), "status", "--dump-path", dump, NULL};
		const char *env[] = {nopass_env, NULL};

		rc = run_tool(argv, env, &out, &err);
		ck_assert_msg(rc == 0 && strstr(out, "unreachable"), "status exited %d: %s%s", rc, out,
		              err);
		free(out);
		free(err);
	}
	usleep(500 * 1000);
	kill(tool.pid, SIGKILL);
	story_finish(&tool, 30, &out, &err);
	assert_clean("an event", out, in_uri);
	assert_clean("a log line", err, in_uri);
	free(out);
	free(err);
	token_path(dump, token, sizeof(token));
	text = pgt_read_file(token);
	ck_assert_msg(text != NULL, "no resume token at %s after kill -9", token);
	assert_clean("the resume token", text, in_uri);
	free(text);
	ck_assert_int_gt(assert_dir_clean(dump, in_uri), 0);

	/* 2. in PGPASSWORD: the same migration resumed, and cut over */
	set_password(in_env);
	snprintf(pw_env, sizeof(pw_env), "PGPASSWORD=%s", in_env);
	{
		const char *argv[] = {
		    pgt_tool(), "--mode", "online",      "--source", src_nopw,
		    "--target", tgt_nopw, "--dump-path", dump,       "--cutover-poll-secs",
		    "1",        "--json", "--resume",    NULL};
		const char *env[] = {pw_env, nopass_env, bindir_env, NULL};

		pgt_spawn(&tool, argv, env);
	}
	story_expect(&tool, "stage=CaughtUp", 60);
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "the resumed migration exited %d: %s", rc, err);
	assert_clean("an event", out, in_env);
	assert_clean("a log line", err, in_env);
	free(out);
	free(err);
	pgt_assert_same(s, t, "t");

	/* 3. in a .pgpass file: an offline run into a fresh database */
	set_password(in_file);
	pgt_exec(t, "DROP TABLE t");
	pgt_scratch("pgpass", passfile, sizeof(passfile));
	f = fopen(passfile, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "127.0.0.1:*:*:migrator:%s\n", in_file);
	fclose(f);
	chmod(passfile, 0600);
	snprintf(passfile_env, sizeof(passfile_env), "PGPASSFILE=%s", passfile);
	unlink(argv_log);
	pgt_scratch("pw-dump-2", dump, sizeof(dump));
	{
		const char *argv[] = {pgt_tool(), "--mode",   "offline", "--source",
		                      src_nopw,   "--target", tgt_nopw,  "--dump-path",
		                      dump,       "--json",   NULL};
		const char *env[] = {passfile_env, bindir_env, NULL};

		rc = run_tool(argv, env, &out, &err);
	}
	ck_assert_msg(rc == 0, "the offline migration exited %d: %s", rc, err);
	text = pgt_read_file(argv_log);
	ck_assert_msg(text && strstr(text, "argv: "), "the children did not run");
	assert_clean("a child's argv", text, in_file);
	free(text);
	assert_clean("an event", out, in_file);
	assert_clean("a log line", err, in_file);
	free(out);
	free(err);
	ck_assert_int_gt(assert_dir_clean(dump, in_file), 0);
	pgt_assert_same(s, t, "t");

	/* 4. failures: messages about connections and strings carry no password */
	{
		char nowhere[512], broken[512];
		const char *bad[][2] = {{src, nowhere}, {broken, tgt}};

		set_password(in_uri);
		/* a port nobody listens on */
		snprintf(nowhere, sizeof(nowhere), "postgresql://migrator:%s@127.0.0.1:1/pw", in_uri);
		/*
		 * libpq quotes the whole URI when it does not parse: the tool printed
		 * "invalid connection string: ... in URI: "postgresql://migrator:<the
		 * password>@[..."" until conninfo_parse masked the password out of it
		 */
		snprintf(broken, sizeof(broken), "postgresql://migrator:%s@[::1:%d/pw", in_uri,
		         src_server.port);
		for (int i = 0; i < 2; i++)
		{
			const char *argv[] = {pgt_tool(), "--mode",        "online",  "--source",
			                      bad[i][0],  "--target",      bad[i][1], "--dump-path",
			                      dump,       "--force-clean", "--json",  NULL};
			const char *env[] = {nopass_env, NULL};

			rc = run_tool(argv, env, &out, &err);
			ck_assert_msg(rc == 1 || rc == 2, "case %d exited %d: %s", i, rc, err);
			ck_assert_msg(strlen(err) > 0, "case %d: no message", i);
			assert_clean("an error event", out, in_uri);
			assert_clean("an error message", err, in_uri);
			free(out);
			free(err);
		}
	}
	ck_assert_str_eq(pgt_value(s, "SELECT count(*) FROM pg_replication_slots", buf, sizeof(buf)),
	                 "0");
	unsetenv("PGPASSFILE");
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(files_it_writes_are_private_under_umask_022)
{
	char src[256], tgt[256], dump[512], go[512], log[512], bindir[512], bindir_env[600];
	char before[700], token[600], settings[600];
	PGconn *s;
	pgt_proc tool;
	mode_t old;
	char *out, *err;
	int rc;
	struct stat st;

	pgt_fresh_database(src_admin, tgt_admin, "modes");
	pgt_connstr(&src_server, "modes", src, sizeof(src));
	pgt_connstr(&tgt_server, "modes", tgt, sizeof(tgt));
	s = pgt_connect(&src_server, "modes");
	pgt_exec(s, "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)");
	pgt_exec(s, "INSERT INTO a SELECT generate_series(1, 100); INSERT INTO b VALUES (1)");
	/*
	 * pg_restore waits for the test's go-ahead: the dump, the token and the
	 * settings exist. pg_dump wrote its table files 0644 under umask 022 (the
	 * directory alone kept them in) until the tool gave its children umask 077.
	 */
	pgt_scratch("modes-go", go, sizeof(go));
	pgt_scratch("modes.log", log, sizeof(log));
	snprintf(before, sizeof(before),
	         "case \"$0\" in *pg_restore) i=0; while [ ! -e '%s' ] && [ $i -lt 600 ]; do "
	         "sleep 0.1; i=$((i+1)); done;; esac",
	         go);
	pgt_recording_bindir("modes-bin", log, before, bindir, sizeof(bindir));
	snprintf(bindir_env, sizeof(bindir_env), "PG_BINDIR=%s", bindir);
	pgt_scratch("modes-dump", dump, sizeof(dump));
	old = umask(022);
	{
		const char *argv[] = {pgt_tool(), "--mode",   "offline", "--source",
		                      src,        "--target", tgt,       "--dump-path",
		                      dump,       "--jobs",   "2",       "--fast-restore-settings",
		                      NULL};
		const char *env[] = {bindir_env, NULL};

		pgt_spawn(&tool, argv, env);
	}
	umask(old);
	for (int i = 0; i < 600 && pgt_count_in_file(log, "argv:") < 2; i++)
		usleep(100 * 1000);
	ck_assert_msg(pgt_count_in_file(log, "argv:") == 2, "pg_restore never started");
	ck_assert_int_eq(stat(dump, &st), 0);
	ck_assert_msg((st.st_mode & 07777) == 0700, "the dump directory has mode %04o",
	              (unsigned)(st.st_mode & 07777));
	{
		DIR *d = opendir(dump);
		struct dirent *de;
		int files = 0;

		ck_assert_ptr_nonnull(d);
		while ((de = readdir(d)) != NULL)
		{
			char path[1024];

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dump, de->d_name);
			assert_private(path);
			files++;
		}
		closedir(d);
		ck_assert_int_ge(files, 3); /* toc.dat and one file per table */
	}
	token_path(dump, token, sizeof(token));
	ck_assert_int_eq(stat(token, &st), 0);
	ck_assert_msg((st.st_mode & 07777) == 0600, "the resume token has mode %04o",
	              (unsigned)(st.st_mode & 07777));
	snprintf(settings, sizeof(settings), "%s.settings", dump);
	assert_private(settings);
	{
		FILE *f = fopen(go, "w");

		ck_assert_ptr_nonnull(f);
		fclose(f);
	}
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %s", rc, err);
	free(out);
	free(err);
	PQfinish(s);
}
END_TEST

int
main(void)
{
	const story_plan plan = {"security",     "security",       180, NULL, NULL, setup, teardown,
	                         connect_admins, disconnect_admins};
	const TTest *const stories[] = {verify_full_tls_on_every_connection_and_a_wrong_ca_fails_closed,
	                                no_password_leaks_from_a_uri_pgpassword_or_a_pgpass_file,
	                                files_it_writes_are_private_under_umask_022, NULL};

	return story_run_suite(story_suite(&plan, stories));
}
