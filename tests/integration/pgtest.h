/*
 * pgtest.h — the real-server test harness: throwaway PostgreSQL clusters
 * (initdb + pg_ctl on a free loopback port, wal_level=logical), run as an
 * unprivileged OS user when the tests run as root, and removed however the
 * test ends (a watchdog process cleans up after the test process dies, even
 * by SIGKILL). Helpers to run SQL and the pg_dbmigrator binary.
 *
 * Owns: the cluster directory and its server. Never: touches a cluster it
 * did not create, or writes inside the source tree.
 */
#ifndef PGTEST_H
#define PGTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <libpq-fe.h>

typedef struct pgt_cluster
{
	char dir[256];   /* the cluster's temporary directory (data/, log, socket) */
	int port;        /* loopback TCP port */
	pid_t watchdog;  /* cleans up if the test process dies */
	int watchdog_fd; /* write end of the watchdog's pipe; closing it triggers cleanup */
	bool running;
} pgt_cluster;

/*
 * Start a cluster with extra_conf (postgresql.conf lines, may be NULL).
 * Fails the current Check test with the server log on error.
 */
void pgt_start(pgt_cluster *c, const char *extra_conf);

/* Stop the cluster and remove its directory (safe to call twice). */
void pgt_stop(pgt_cluster *c);

/* Restart the cluster (pg_ctl restart -m fast). */
void pgt_restart(pgt_cluster *c);

/*
 * Crash the cluster and start it again (pg_ctl restart -m immediate): WAL
 * not yet written is lost, as on a power cut; crash recovery on start.
 */
void pgt_crash(pgt_cluster *c);

/*
 * Append conf (postgresql.conf lines, may be NULL), replace pg_hba.conf with
 * hba (may be NULL: kept), then restart so that both are in force.
 */
void pgt_configure(pgt_cluster *c, const char *conf, const char *hba);

/*
 * Copy the file at from into the cluster's directory as name, owned by the
 * server's OS user, with mode (a key file the server must read); its path
 * into buf.
 */
const char *pgt_server_file(const pgt_cluster *c, const char *from, const char *name, mode_t mode,
                            char *buf, size_t size);

/* "host=127.0.0.1 port=N user=postgres dbname=db" into buf. */
const char *pgt_connstr(const pgt_cluster *c, const char *db, char *buf, size_t size);

/* The same as user (a role that logs in without a password: the clusters trust loopback). */
const char *pgt_connstr_as(const pgt_cluster *c, const char *db, const char *user, char *buf,
                           size_t size);

/*
 * A managed-service-shaped target: role (NOSUPERUSER NOCREATEROLE, LOGIN,
 * created if missing) and database name, dropped if there and created owned
 * by that role. admin is a superuser connection to the target cluster.
 */
void pgt_owned_database(PGconn *admin, const char *name, const char *role);

/* Connect to db; fails the test on error. */
PGconn *pgt_connect(const pgt_cluster *c, const char *db);

/* Connect to db as user; fails the test on error. */
PGconn *pgt_connect_as(const pgt_cluster *c, const char *db, const char *user);

/* Run SQL; fails the test with the server's message and the SQL on error. */
void pgt_exec(PGconn *conn, const char *sql);

/* Run SQL returning one value; copies it into buf ("" for NULL); fails on error. */
const char *pgt_value(PGconn *conn, const char *sql, char *buf, size_t size);

/* The pg_dbmigrator binary under test ($PGDBM_TOP_BUILDDIR/pg_dbmigrator). */
const char *pgt_tool(void);

/* Read a whole file into a malloc'd NUL-terminated string (NULL if missing). */
char *pgt_read_file(const char *path);

/* A fresh scratch file path under the test's temporary area. */
const char *pgt_scratch(const char *name, char *buf, size_t size);

/* A child process started by pgt_spawn (the tool under test, usually). */
typedef struct pgt_proc
{
	pid_t pid;
	int out_fd;         /* read end of the child's stdout pipe, or -1 */
	char err_path[512]; /* the child's stderr goes to this scratch file */
} pgt_proc;

/*
 * Start argv (argv[0] a path) as the current user, stdout to a pipe the test
 * reads (or leaves unread, to stall the child), stderr to a scratch file.
 * env_extra: "NAME=value" strings added to the environment (may be NULL).
 */
void pgt_spawn(pgt_proc *p, const char *const argv[], const char *const env_extra[]);

/* Read the child's stdout until EOF into a malloc'd string; closes out_fd. */
char *pgt_slurp(pgt_proc *p);

/*
 * Wait for the child to exit for up to timeout_s seconds, killing it
 * (SIGKILL) after that; the exit code, 128+signal, or -1 on timeout.
 */
int pgt_wait(pgt_proc *p, int timeout_s);

/* The child's stderr (malloc'd, "" when empty). */
char *pgt_stderr(const pgt_proc *p);

/* Path of a PostgreSQL program ($PG_BINDIR, else the configured bindir) into buf. */
const char *pgt_bin(const char *name, char *buf, size_t size);

/*
 * A new scratch bin directory (named name) whose pg_dump and pg_restore
 * append "argv: <their arguments>" and "PGPASSWORD set: yes|" to log, run
 * the shell snippet before (may be NULL; $0 names the program), then exec
 * the real programs. Give it to the tool as PG_BINDIR; its path into buf.
 */
const char *pgt_recording_bindir(const char *name, const char *log, const char *before, char *buf,
                                 size_t size);

/* Fail the test unless table has the same rows on both connections (count and hash). */
void pgt_assert_same(PGconn *a, PGconn *b, const char *table);

/* Wait until the file at path contains needle, up to seconds; true if it did. */
bool pgt_wait_for_text(const char *path, const char *needle, int seconds);

/* Database name (a plain identifier), dropped if there and created empty, on both servers. */
void pgt_fresh_database(PGconn *a, PGconn *b, const char *name);

/* Occurrences of needle in the file at path (0 when it is missing). */
int pgt_count_in_file(const char *path, const char *needle);

#endif /* PGTEST_H */
