/*
 * pgtest.c — throwaway PostgreSQL clusters for the real-server tests
 * (see pgtest.h).
 *
 * Owns: each cluster's directory, server and watchdog process. Never: runs
 * the server as root, writes into the source or build tree, or leaves a
 * server behind (the watchdog stops it when the test process goes away).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgtest.h"

#define PGT_PATH 1024 /* any path we build: dir + a file name */

static char pgt_scratch_dir[256];
static pid_t pgt_scratch_owner;

/* The OS user servers run as when we are root: postgres, else nobody. */
static const struct passwd *
pgt_server_user(void)
{
	const struct passwd *pw;

	if (geteuid() != 0)
		return NULL;
	pw = getpwnam("postgres");
	return pw ? pw : getpwnam("nobody");
}

/* Drop to the server user in a child that is about to exec. */
static void
pgt_drop_privileges(void)
{
	const struct passwd *pw = pgt_server_user();

	if (pw == NULL)
		return;
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
	{
		fprintf(stderr, "pgtest: cannot switch to user %s: %s\n", pw->pw_name, strerror(errno));
		_exit(127);
	}
}

/* Run argv (as the server user when root), output to logfile; the exit status. */
static int
pgt_run(const char *const argv[], const char *logfile)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0)
	{
		int fd = open(logfile ? logfile : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);

		pgt_drop_privileges();
		if (fd >= 0)
		{
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "pgtest: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* nftw callback: remove one entry. */
static int
pgt_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* rm -rf dir. */
static void
pgt_rmtree(const char *dir)
{
	if (dir[0])
		nftw(dir, pgt_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Path of a binary in PG_BINDIR. */
const char *
pgt_bin(const char *name, char *buf, size_t size)
{
	const char *dir = getenv("PG_BINDIR");

	snprintf(buf, size, "%s/%s", dir && dir[0] ? dir : PG_BINDIR, name);
	return buf;
}

/* pg_ctl stop -m immediate for dir (quietly). */
static void
pgt_pg_ctl_stop(const char *dir)
{
	char pg_ctl[PGT_PATH], data[PGT_PATH];
	const char *argv[] = {pg_ctl, "-D", data, "-m", "immediate", "-w", "stop", NULL};

	pgt_bin("pg_ctl", pg_ctl, sizeof(pg_ctl));
	snprintf(data, sizeof(data), "%s/data", dir);
	pgt_run(argv, NULL);
}

/*
 * Fork the watchdog: it waits for EOF on a pipe only the test process (and
 * its forks) hold, then stops the server and removes the directory.
 */
static void
pgt_start_watchdog(pgt_cluster *c)
{
	int fds[2];
	pid_t pid;

	if (pipe(fds) != 0)
		ck_abort_msg("pgtest: pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		ck_abort_msg("pgtest: fork: %s", strerror(errno));
	if (pid == 0)
	{
		char byte;

		setsid();
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		/* keep only our read end: inherited write ends of other clusters' watchdogs
		 * would keep those waiting forever */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != fds[0])
				close(fd);
		/* nothing is ever written: read returns when every writer is gone */
		while (read(fds[0], &byte, 1) < 0 && errno == EINTR)
			;
		/* an initdb or server start of the dead test may still be running: retry */
		for (int attempt = 0; attempt < 30; attempt++)
		{
			struct stat st;

			pgt_pg_ctl_stop(c->dir);
			pgt_rmtree(c->dir);
			if (stat(c->dir, &st) != 0)
				break;
			sleep(1);
		}
		_exit(0);
	}
	close(fds[0]);
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);
	c->watchdog = pid;
	c->watchdog_fd = fds[1];
}

/* A loopback port nobody listens on right now. */
static int
pgt_free_port(void)
{
	struct sockaddr_in addr = {0};
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port = 0;

	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
		port = ntohs(addr.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* Print the tail of a file to stderr. */
static void
pgt_show_tail(const char *path)
{
	char *text = pgt_read_file(path);
	size_t n = text ? strlen(text) : 0;

	fprintf(stderr, "---- %s (last 3000 bytes) ----\n%s\n----\n", path,
	        text ? text + (n > 3000 ? n - 3000 : 0) : "(missing)");
	free(text);
}

/* Start a throwaway cluster. */
void
pgt_start(pgt_cluster *c, const char *extra_conf)
{
	const struct passwd *pw = pgt_server_user();
	const char *tmp = getenv("TMPDIR");
	char initdb[PGT_PATH], pg_ctl[PGT_PATH], data[PGT_PATH], log[PGT_PATH], conf[PGT_PATH];
	int rc;

	memset(c, 0, sizeof(*c));
	c->watchdog_fd = -1;
	snprintf(c->dir, sizeof(c->dir), "%s/pgdbm-test-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	if (mkdtemp(c->dir) == NULL)
		ck_abort_msg("pgtest: cannot create a directory under %s: %s", tmp ? tmp : "/tmp",
		             strerror(errno));
	if (pw && chown(c->dir, pw->pw_uid, pw->pw_gid) != 0)
		ck_abort_msg("pgtest: chown %s: %s", c->dir, strerror(errno));
	pgt_start_watchdog(c);

	pgt_bin("initdb", initdb, sizeof(initdb));
	pgt_bin("pg_ctl", pg_ctl, sizeof(pg_ctl));
	snprintf(data, sizeof(data), "%s/data", c->dir);
	snprintf(log, sizeof(log), "%s/server.log", c->dir);
	snprintf(conf, sizeof(conf), "%s/data/postgresql.conf", c->dir);
	{
		const char *argv[] = {initdb,  "-D", data,   "-U",         "postgres",  "-A",
		                      "trust", "-E", "UTF8", "--locale=C", "--no-sync", NULL};
		char initlog[PGT_PATH];

		snprintf(initlog, sizeof(initlog), "%s/initdb.log", c->dir);
		if ((rc = pgt_run(argv, initlog)) != 0)
		{
			pgt_show_tail(initlog);
			ck_abort_msg("pgtest: initdb failed with status %d (is PostgreSQL installed? run "
			             "scripts/setup)",
			             rc);
		}
	}
	for (int attempt = 0; attempt < 5; attempt++)
	{
		FILE *f;
		const char *argv[] = {pg_ctl, "-D", data, "-l", log, "-w", "-t", "60", "start", NULL};

		c->port = pgt_free_port();
		/* later settings win: each attempt appends its port */
		f = fopen(conf, "a");
		if (f == NULL)
			ck_abort_msg("pgtest: cannot write %s: %s", conf, strerror(errno));
		fprintf(f,
		        "\n# pgtest\nlisten_addresses = '127.0.0.1'\nport = %d\n"
		        "unix_socket_directories = '%s'\nwal_level = logical\n"
		        "max_replication_slots = 10\nmax_wal_senders = 10\nfsync = off\n"
		        "full_page_writes = off\nlog_min_messages = warning\n%s\n",
		        c->port, c->dir, extra_conf ? extra_conf : "");
		fclose(f);
		if (pgt_run(argv, NULL) == 0)
		{
			c->running = true;
			return;
		}
	}
	pgt_show_tail(log);
	ck_abort_msg("pgtest: the server in %s did not start (log above)", c->dir);
}

/* Stop and remove the cluster. */
void
pgt_stop(pgt_cluster *c)
{
	const char *keep = getenv("PGDBM_TEST_KEEP");

	if (c->dir[0] == '\0')
		return;
	if (keep && strcmp(keep, "1") == 0)
	{
		fprintf(stderr, "pgtest: keeping %s (port %d)\n", c->dir, c->port);
		return;
	}
	if (c->running)
		pgt_pg_ctl_stop(c->dir);
	pgt_rmtree(c->dir);
	if (c->watchdog_fd >= 0)
	{
		close(c->watchdog_fd); /* the watchdog finds nothing left and exits */
		waitpid(c->watchdog, NULL, 0);
	}
	c->running = false;
	c->dir[0] = '\0';
	c->watchdog_fd = -1;
}

/* pg_ctl restart in mode (fast, immediate). */
static void
pgt_restart_mode(pgt_cluster *c, const char *mode)
{
	char pg_ctl[PGT_PATH], data[PGT_PATH], log[PGT_PATH];
	const char *argv[] = {pg_ctl, "-D", data, "-l", log,       "-m",
	                      mode,   "-w", "-t", "60", "restart", NULL};

	pgt_bin("pg_ctl", pg_ctl, sizeof(pg_ctl));
	snprintf(data, sizeof(data), "%s/data", c->dir);
	snprintf(log, sizeof(log), "%s/server.log", c->dir);
	if (pgt_run(argv, NULL) != 0)
	{
		pgt_show_tail(log);
		ck_abort_msg("pgtest: restart (-m %s) of %s failed", mode, c->dir);
	}
}

void
pgt_restart(pgt_cluster *c)
{
	pgt_restart_mode(c, "fast");
}

void
pgt_crash(pgt_cluster *c)
{
	pgt_restart_mode(c, "immediate");
}

/* Append conf, replace pg_hba.conf, restart. */
void
pgt_configure(pgt_cluster *c, const char *conf, const char *hba)
{
	char path[PGT_PATH];
	FILE *f;

	if (conf)
	{
		snprintf(path, sizeof(path), "%s/data/postgresql.conf", c->dir);
		f = fopen(path, "a");
		if (f == NULL)
			ck_abort_msg("pgtest: cannot write %s: %s", path, strerror(errno));
		fprintf(f, "\n# pgt_configure\n%s\n", conf);
		fclose(f);
	}
	if (hba)
	{
		/* truncated in place: the file keeps its owner, the server's user */
		snprintf(path, sizeof(path), "%s/data/pg_hba.conf", c->dir);
		f = fopen(path, "w");
		if (f == NULL)
			ck_abort_msg("pgtest: cannot write %s: %s", path, strerror(errno));
		fputs(hba, f);
		fclose(f);
	}
	pgt_restart(c);
}

/* Copy from into the cluster's directory, owned like the directory (the server's user). */
const char *
pgt_server_file(const pgt_cluster *c, const char *from, const char *name, mode_t mode, char *buf,
                size_t size)
{
	char *text = pgt_read_file(from);
	struct stat st;
	int fd;

	if (text == NULL)
		ck_abort_msg("pgtest: cannot read %s", from);
	snprintf(buf, size, "%s/%s", c->dir, name);
	fd = open(buf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    stat(c->dir, &st) != 0 || fchown(fd, st.st_uid, st.st_gid) != 0 || fchmod(fd, mode) != 0)
		ck_abort_msg("pgtest: cannot write %s: %s", buf, strerror(errno));
	close(fd);
	free(text);
	return buf;
}

/* Connection string for db. */
const char *
pgt_connstr(const pgt_cluster *c, const char *db, char *buf, size_t size)
{
	return pgt_connstr_as(c, db, "postgres", buf, size);
}

const char *
pgt_connstr_as(const pgt_cluster *c, const char *db, const char *user, char *buf, size_t size)
{
	size_t n =
	    (size_t)snprintf(buf, size, "host=127.0.0.1 port=%d user=%s dbname='", c->port, user);

	/* quoted: database names may have spaces and quotes */
	for (const char *p = db; *p && n + 3 < size; p++)
	{
		if (*p == '\'' || *p == '\\')
			buf[n++] = '\\';
		buf[n++] = *p;
	}
	if (n + 1 < size)
		buf[n++] = '\'';
	buf[n < size ? n : size - 1] = '\0';
	return buf;
}

/* Connect or fail the test. */
PGconn *
pgt_connect(const pgt_cluster *c, const char *db)
{
	return pgt_connect_as(c, db, "postgres");
}

/* Connect as user or fail the test. */
PGconn *
pgt_connect_as(const pgt_cluster *c, const char *db, const char *user)
{
	char cs[256];
	PGconn *conn = PQconnectdb(pgt_connstr_as(c, db, user, cs, sizeof(cs)));

	if (PQstatus(conn) != CONNECTION_OK)
		ck_abort_msg("pgtest: cannot connect with \"%s\": %s", cs, PQerrorMessage(conn));
	return conn;
}

/* Run SQL or fail the test. */
void
pgt_exec(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
	{
		char msg[1024];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
		PQclear(res);
		ck_abort_msg("pgtest: SQL failed: %s\n  in: %.400s", msg, sql);
	}
	PQclear(res);
}

/* One value or fail the test. */
const char *
pgt_value(PGconn *conn, const char *sql, char *buf, size_t size)
{
	PGresult *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		char msg[1024];

		snprintf(msg, sizeof(msg), "%s (%d rows)", PQerrorMessage(conn), PQntuples(res));
		PQclear(res);
		ck_abort_msg("pgtest: query failed: %s\n  in: %.400s", msg, sql);
	}
	snprintf(buf, size, "%s", PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
	PQclear(res);
	return buf;
}

/* The binary under test. */
const char *
pgt_tool(void)
{
	static char path[PGT_PATH];
	const char *top = getenv("PGDBM_TOP_BUILDDIR");

	snprintf(path, sizeof(path), "%s/pg_dbmigrator", top && top[0] ? top : ".");
	return path;
}

/* Read a whole file. */
char *
pgt_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	size_t n;

	if (f == NULL)
		return NULL;
	do
	{
		if (cap - len < 65536)
		{
			char *grown = realloc(buf, cap ? cap * 2 : 131072);

			if (grown == NULL)
				break;
			buf = grown;
			cap = cap ? cap * 2 : 131072;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	fclose(f);
	if (buf)
		buf[len] = '\0';
	return buf;
}

/* Remove the scratch directory when its creator exits. */
static void
pgt_scratch_cleanup(void)
{
	const char *keep = getenv("PGDBM_TEST_KEEP");

	if (getpid() == pgt_scratch_owner && !(keep && strcmp(keep, "1") == 0))
		pgt_rmtree(pgt_scratch_dir);
}

/* A path in this process's scratch directory. */
const char *
pgt_scratch(const char *name, char *buf, size_t size)
{
	if (pgt_scratch_dir[0] == '\0')
	{
		const char *tmp = getenv("TMPDIR");

		snprintf(pgt_scratch_dir, sizeof(pgt_scratch_dir), "%s/pgdbm-scratch-XXXXXX",
		         tmp && tmp[0] ? tmp : "/tmp");
		if (mkdtemp(pgt_scratch_dir) == NULL)
			ck_abort_msg("pgtest: mkdtemp: %s", strerror(errno));
		pgt_scratch_owner = getpid();
		atexit(pgt_scratch_cleanup);
	}
	snprintf(buf, size, "%s/%s", pgt_scratch_dir, name);
	return buf;
}

/* Start a child with its stdout on a pipe and its stderr in a scratch file. */
void
pgt_spawn(pgt_proc *p, const char *const argv[], const char *const env_extra[])
{
	static int seq;
	char name[64];
	int pipefd[2];

	snprintf(name, sizeof(name), "proc-%d.err", ++seq);
	pgt_scratch(name, p->err_path, sizeof(p->err_path));
	if (pipe(pipefd) != 0)
		ck_abort_msg("pgtest: pipe: %s", strerror(errno));
	fflush(NULL);
	p->pid = fork();
	if (p->pid < 0)
		ck_abort_msg("pgtest: fork: %s", strerror(errno));
	if (p->pid == 0)
	{
		int fd = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(pipefd[1], STDOUT_FILENO);
		if (fd >= 0)
			dup2(fd, STDERR_FILENO);
		close(pipefd[0]);
		close(pipefd[1]);
		for (int i = 0; env_extra && env_extra[i]; i++)
			putenv((char *)env_extra[i]);
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "pgtest: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	p->out_fd = pipefd[0];
}

/* Read the child's whole stdout. */
char *
pgt_slurp(pgt_proc *p)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (p->out_fd < 0)
		return strdup("");
	for (;;)
	{
		ssize_t n;

		if (cap - len < 65536)
		{
			char *grown = realloc(buf, cap ? cap * 2 : 131072);

			ck_assert_ptr_nonnull(grown);
			buf = grown;
			cap = cap ? cap * 2 : 131072;
		}
		n = read(p->out_fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(p->out_fd);
	p->out_fd = -1;
	return buf;
}

/* Wait with a deadline; SIGKILL the child past it. */
int
pgt_wait(pgt_proc *p, int timeout_s)
{
	int status;

	for (int waited_ms = 0;; waited_ms += 50)
	{
		pid_t r = waitpid(p->pid, &status, WNOHANG);

		if (r == p->pid)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
		if (waited_ms >= timeout_s * 1000)
		{
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &status, 0);
			return -1;
		}
		usleep(50 * 1000);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The child's stderr text. */
char *
pgt_stderr(const pgt_proc *p)
{
	char *s = pgt_read_file(p->err_path);

	return s ? s : strdup("");
}

/* pg_dump and pg_restore wrappers that record their argv, then exec the real ones. */
const char *
pgt_recording_bindir(const char *name, const char *log, const char *before, char *buf, size_t size)
{
	static const char *const tools[] = {"pg_dump", "pg_restore"};
	char path[PGT_PATH], real[PGT_PATH];

	pgt_scratch(name, buf, size);
	if (mkdir(buf, 0700) != 0 && errno != EEXIST)
		ck_abort_msg("pgtest: mkdir %s: %s", buf, strerror(errno));
	for (int i = 0; i < 2; i++)
	{
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", buf, tools[i]);
		f = fopen(path, "w");
		if (f == NULL)
			ck_abort_msg("pgtest: cannot write %s: %s", path, strerror(errno));
		fprintf(f,
		        "#!/bin/sh\n"
		        "if [ \"$1\" = --version ]; then exec '%s' --version; fi\n"
		        "echo \"argv: $*\" >> '%s'\n"
		        "echo \"PGPASSWORD set: ${PGPASSWORD:+yes}\" >> '%s'\n"
		        "%s\n"
		        "exec '%s' \"$@\"\n",
		        pgt_bin(tools[i], real, sizeof(real)), log, log, before ? before : "", real);
		fclose(f);
		chmod(path, 0700);
	}
	return buf;
}

/* Every row of table hashed in a canonical order: equal on both sides? */
void
pgt_assert_same(PGconn *a, PGconn *b, const char *table)
{
	char sql[1024], x[128], y[128];

	snprintf(sql, sizeof(sql),
	         /* hashed as UTF-8: a LATIN1 source and a UTF8 target compare equal */
	         "SELECT count(*) || ' ' || coalesce(md5(convert_to(string_agg(t::text, '|' ORDER BY "
	         "t::text), 'UTF8')), '-') FROM %s t",
	         table);
	pgt_value(a, sql, x, sizeof(x));
	pgt_value(b, sql, y, sizeof(y));
	ck_assert_msg(strcmp(x, y) == 0, "%s differs: source %s, target %s", table, x, y);
}

/* Wait until the file at path contains needle; true if it did in time. */
bool
pgt_wait_for_text(const char *path, const char *needle, int seconds)
{
	for (int i = 0; i < seconds * 10; i++)
	{
		if (pgt_count_in_file(path, needle) > 0)
			return true;
		usleep(100 * 1000);
	}
	return false;
}

/* Occurrences of needle in the file at path (0 when it is missing). */
int
pgt_count_in_file(const char *path, const char *needle)
{
	char *text = pgt_read_file(path);
	int n = 0;

	for (const char *p = text; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(text);
	return n;
}

/* Database name, dropped if there and created empty, on both connections' servers. */
void
pgt_fresh_database(PGconn *a, PGconn *b, const char *name)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
	pgt_exec(a, sql);
	pgt_exec(b, sql);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	pgt_exec(a, sql);
	pgt_exec(b, sql);
}

void
pgt_owned_database(PGconn *admin, const char *name, const char *role)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
	         "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN "
	         "CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB; END IF; END$$",
	         role, role);
	pgt_exec(admin, sql);
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
	pgt_exec(admin, sql);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER %s", name, role);
	pgt_exec(admin, sql);
}
