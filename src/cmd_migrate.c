/*
 * cmd_migrate.c — `pg_dbmigrator --mode offline|online`: the migration.
 *
 *   Validate → PrepareSnapshot → Dump → Restore → StreamApply → (Lag …)
 *   → CaughtUp → Cutover → SequenceSync → Complete
 *
 * Offline runs Validate, Dump, Restore, Complete. Online keeps the
 * replication connection that exported the snapshot idle until pg_dump is
 * done with it, then streams from the slot's consistent point with the apply
 * engine until the operator's Ctrl+C (or SIGTERM): a WAL position past every
 * commit acknowledged before that moment becomes the end position
 * (mig_end_position), everything up to it is applied and committed,
 * sequences are synced, and what we created is dropped. A second Ctrl+C
 * aborts at once, keeps the slot, and exits 3.
 *
 * Owns: the run's connections, slot and publication (when it created them),
 * child processes, ring, receiver and applier. The command line (flags,
 * usage, the config hash, a whole-server child's argv) is migopts.c's.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apply.h"
#include "child.h"
#include "cli.h"
#include "cmd.h"
#include "conninfo.h"
#include "dumprestore.h"
#include "events.h"
#include "guard.h"
#include "migopts.h"
#include "pipeline.h"
#include "receiver.h"
#include "relcache.h"
#include "replconn.h"
#include "resume.h"
#include "scope.h"
#include "srcplan.h"
#include "ring.h"
#include "stream.h"
#include "verify.h"
#include "pgdbm_schema.h"
#include "pgsession.h"

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
} mig;

static volatile sig_atomic_t mig_signals = 0; /* SIGINT/SIGTERM received */
static volatile sig_atomic_t mig_abort = 0;   /* a second one: stop now */
static volatile sig_atomic_t mig_halt = 1;    /* always set: stream_opts.stop for a halt */

/*
 * How late a commit's row-change counters may reach pg_stat_user_tables: a
 * PostgreSQL 15+ backend that reported less than a second ago and then goes
 * idle reports again only after PGSTAT_IDLE_INTERVAL (10 s).
 */
#define MIG_STATS_DELAY_MS(version) ((version) >= 150000 ? 11000 : 2000)

static void
mig_on_signal(int sig)
{
	(void)sig;
	if (++mig_signals >= 2)
		mig_abort = 1;
}

/* ----------------------------------------------------------------- helpers */

/* Fail a check: one event, one message saying what to change. */
static bool __attribute__((format(printf, 2, 0)))
mig_check_failed(const char *check, const char *fmt, const char *arg)
{
	event e;
	char msg[4096];

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(msg, sizeof(msg), fmt, arg ? arg : "");
#pragma GCC diagnostic pop
	event_begin(&e, "Validate");
	event_level(&e, "error");
	event_str(&e, "check", check);
	event_end(&e, "%s", msg);
	return false;
}

static PGconn *
mig_connect(const char *connstr, const char *which, char *errbuf, size_t errlen)
{
	/*
	 * UTF-8 on both sides (kept by PQreset): names read from a LATIN1 source
	 * are sent to a UTF8 target (guard, sequences) and back to the source
	 */
	const pgsession_opts o = {.conninfo = connstr,
	                          .role = strcmp(which, "source") == 0 ? PGSESSION_SOURCE
	                                                               : PGSESSION_TARGET,
	                          .client_encoding = "UTF8"};
	char why[4096];
	PGconn *c = pgsession_open(&o, why, sizeof(why));

	/* a long reason is cut to errbuf (the result says so, and is not needed) */
	if (c == NULL && snprintf(errbuf, errlen, "cannot connect to the %s: %s", which, why) < 0)
		errbuf[0] = '\0';
	return c;
}

/* One value of a query (copied into buf); false (with the server's message) on error. */
static bool
mig_value(PGconn *c, const char *sql, char *buf, size_t size, char *errbuf, size_t errlen)
{
	PGresult *res = PQexec(c, sql);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	if (ok)
		snprintf(buf, size, "%s", PQgetvalue(res, 0, 0));
	else
		snprintf(errbuf, errlen, "\"%s\" failed: %s", sql, PQerrorMessage(c));
	PQclear(res);
	return ok;
}

static bool
mig_exec(PGconn *c, const char *sql, char *errbuf, size_t errlen)
{
	PGresult *res = PQexec(c, sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		snprintf(errbuf, errlen, "\"%.200s\" failed: %s", sql, PQerrorMessage(c));
	PQclear(res);
	return ok;
}

/* The filters as scope lists (NULL-terminated copies of the option arrays). */
static scope_filters
mig_scope(mig *m)
{
	scope_filters f;

	m->o.schemas[m->o.nschemas] = NULL;
	m->o.tables[m->o.ntables] = NULL;
	m->o.ex_schemas[m->o.nex_schemas] = NULL;
	m->o.ex_tables[m->o.nex_tables] = NULL;
	f.schemas = m->o.schemas;
	f.tables = m->o.tables;
	f.exclude_schemas = m->o.ex_schemas;
	f.exclude_tables = m->o.ex_tables;
	return f;
}

/* The migrated tables as "schema"."table", comma-separated, and their count. */
static bool
mig_tables(mig *m, strbuf *out, int *count, char *errbuf, size_t errlen)
{
	scope_filters f = mig_scope(m);
	char **names;
	bool ok;

	if (!scope_list_tables(m->src, &f, &names, count, errbuf, errlen))
		return false;
	ok = true;
	for (int i = 0; ok && i < *count; i++)
		ok = strbuf_appendf(out, "%s%s", i ? ", " : "", names[i]);
	scope_free(names, *count);
	if (!ok)
		snprintf(errbuf, errlen, "out of memory");
	return ok;
}

/* ---------------------------------------------------------------- Validate */

/* A client tool's path, checked to exist. */
static bool
mig_tool(mig *m, const char *name, char *path, size_t size)
{
	snprintf(path, size, "%s/%s", m->bindir, name);
	if (access(path, X_OK) != 0)
		return mig_check_failed("client_tools",
		                        "%s not found or not executable: install the PostgreSQL client "
		                        "tools (scripts/setup does) or set PG_BINDIR",
		                        path);
	return true;
}

/* Major version of a client tool, from --version. */
static int
mig_tool_major(const char *path)
{
	char cmd[700], line[256];
	FILE *p;
	int major = 0;

	snprintf(cmd, sizeof(cmd), "'%s' --version", path);
	p = popen(cmd, "r");
	if (p == NULL)
		return 0;
	if (fgets(line, sizeof(line), p))
	{
		const char *d = strpbrk(line, "0123456789");

		if (d)
			major = atoi(d);
	}
	pclose(p);
	return major;
}

/*
 * Online: what the dump copies but the stream never carries. Unlogged tables
 * write no WAL, and logical decoding does not decode large objects; their
 * changes after the snapshot never reach the target. Said once, up front,
 * with the way out; the verification compares both.
 */
static void
mig_warn_unstreamed(mig *m)
{
	scope_filters f = mig_scope(m);
	char **names = NULL, err[512], buf[64];
	int n = 0, found = 0;
	PGresult *res;
	strbuf list;

	strbuf_init(&list);
	if (scope_list_tables(m->src, &f, &names, &n, err, sizeof(err)))
	{
		res = PQexec(m->src,
		             "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
		             "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
		             "WHERE c.relpersistence = 'u' AND c.relkind IN ('r', 'p') ORDER BY 1");
		for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++)
			for (int j = 0; j < n; j++)
				if (strcmp(PQgetvalue(res, i, 0), names[j]) == 0)
				{
					if (!strbuf_appendf(&list, "%s%s", found ? ", " : "", names[j]))
						break;
					found++;
				}
		PQclear(res);
		scope_free(names, n);
	}
	if (found > 0)
	{
		event e;

		event_begin(&e, "Validate");
		event_level(&e, "warning");
		event_int(&e, "unlogged_tables", found);
		event_end(&e,
		          "unlogged tables are copied by the dump, but their later changes are never "
		          "streamed (they write no WAL): %s; stop writing to them before the migration, "
		          "make them logged (ALTER TABLE ... SET LOGGED), or copy them again after the "
		          "cutover; the verification compares them",
		          strbuf_data(&list));
	}
	strbuf_free(&list);
	/* pg_dump copies large objects only when nothing is filtered */
	if (!scope_filtered(&f) &&
	    mig_value(m->src, "SELECT count(*) FROM pg_catalog.pg_largeobject_metadata", buf,
	              sizeof(buf), err, sizeof(err)) &&
	    atoll(buf) > 0)
	{
		event e;
		long long count = atoll(buf);

		event_begin(&e, "Validate");
		event_level(&e, "warning");
		event_int(&e, "large_objects", count);
		event_end(&e,
		          "%lld large object%s copied by the dump, but changes to large objects are "
		          "never streamed (logical decoding does not carry them): stop changing them "
		          "before the migration, or copy them again after the cutover; the verification "
		          "compares them",
		          count, count == 1 ? "" : "s");
	}
}

/* Warn when the source would take this migration's walsender for a synchronous standby. */
static void
mig_check_sync_standby(mig *m)
{
	char ssn[1024], app[256], err[256];

	if (!mig_value(m->src, "SHOW synchronous_standby_names", ssn, sizeof(ssn), err, sizeof(err)) ||
	    ssn[0] == '\0')
		return;
	/* the replication connection's application_name: the connection string's, else ours */
	if (!mig_value(m->src, "SELECT current_setting('application_name')", app, sizeof(app), err,
	               sizeof(err)) ||
	    app[0] == '\0')
		snprintf(app, sizeof(app), "pg_dbmigrator");
	if (srcplan_sync_standby_matches(ssn, app))
		event_say(
		    "Validate", "warning",
		    "the source's synchronous_standby_names = '%s' matches this migration's "
		    "walsender (application_name %s): while it streams it may be the synchronous "
		    "standby, so the source's commits wait for the target's apply (it reports each "
		    "target commit at once); to keep them off it, set application_name in --source to "
		    "a name not listed there",
		    ssn, app);
}

/*
 * Online: what the run asks of the source, decided before anything is
 * created there (srcplan): publications, keyless tables, the operator's
 * publication checked.
 */
static bool
mig_validate_source(mig *m, char *errbuf, size_t errlen)
{
	scope_filters f = mig_scope(m);
	char **names, *list;
	int n;
	const char *check = "source_tables";
	bool ok;

	mig_check_sync_standby(m);
	if (m->o.resume)
	{
		if (m->token.keyless_publication[0] == '\0')
			return true;
		if (!srcplan_resume(&m->plan, m->src, m->o.publication, m->token.keyless_publication,
		                    errbuf, errlen))
			return mig_check_failed("source_tables", "%s", errbuf);
		event_say("Validate", "warning",
		          "--resume: the tables without a replica identity are watched again from now; an "
		          "UPDATE or DELETE on them while no run was watching cannot be detected");
		return true;
	}
	if (!scope_list_tables(m->src, &f, &names, &n, errbuf, errlen))
		return mig_check_failed("source_tables", "%s", errbuf);
	m->o.ri_full[m->o.nri_full] = NULL;
	/* what a previous run left is dropped by --force-clean before anything is created */
	srcplan_init(&m->plan, m->o.force_clean && m->have_token && m->token.created_publication,
	             m->o.force_clean && m->have_token && m->token.created_keyless_publication);
	ok = srcplan_build(&m->plan, m->src, names, n, m->o.publication, m->o.ri_full,
	                   migopts_has_filters(&m->o), &check, errbuf, errlen);
	scope_free(names, n);
	if (!ok)
		return mig_check_failed(check, "%s", errbuf);
	if (!m->plan.pub_exists && !m->o.auto_publication)
		return mig_check_failed("publication",
		                        "publication \"%s\" does not exist on the source: create it, "
		                        "or drop --no-auto-create-publication",
		                        m->o.publication);
	list = srcplan_keyless_list(&m->plan, false);
	if (list && list[0])
		event_say("Validate", "warning",
		          "tables without a primary key or replica identity: %s. Their inserts and "
		          "truncates are streamed; an UPDATE or DELETE on one of them during the migration "
		          "stops it before the cutover. To migrate their updates and deletes too: "
		          "--replica-identity-full TABLE (or all-keyless), or add a primary key; or leave "
		          "them out with --exclude-table%s",
		          list,
		          m->plan.track_counts ? ""
		                               : ". WARNING: track_counts is off on the source, so such "
		                                 "an UPDATE or DELETE cannot be detected");
	free(list);
	list = srcplan_keyless_list(&m->plan, true);
	if (list && list[0])
		event_say("Validate", "info",
		          "tables without a primary key, set to REPLICA IDENTITY FULL on the source before "
		          "the slot is created (--replica-identity-full): %s",
		          list);
	free(list);
	return true;
}

/*
 * What the target role lacks, before anything is created: the source's
 * owners it cannot become (refused, offering --no-owner), and, online,
 * whether the apply may SET session_replication_role; if not, the guard
 * will be used, which needs to own the migrated tables.
 */
static bool
mig_validate_target_role(mig *m, char *errbuf, size_t errlen)
{
	scope_filters f = mig_scope(m);
	char **names = NULL, role[256], msg[3072];
	int n = 0, nforeign = 0;
	bool can = true, ok;
	strbuf foreign;

	if (!mig_value(m->tgt, "SELECT current_user", role, sizeof(role), errbuf, errlen))
		return mig_check_failed("target_role", "%s", errbuf);
	if (m->o.online)
	{
		event e;

		if (!guard_can_replica(m->tgt, &can, errbuf, errlen))
			return mig_check_failed("target_replication_role", "%s", errbuf);
		m->guard_full = !can;
		if (!can)
		{
			event_begin(&e, "Validate");
			event_level(&e, "warning");
			event_str(&e, "check", "target_replication_role");
			event_end(&e,
			          "the target role %s may not SET session_replication_role (GRANT SET ON "
			          "PARAMETER session_replication_role TO %s allows it, on PostgreSQL 15+): "
			          "the guard will disable the user triggers and drop the foreign keys of the "
			          "migrated tables on the target while streaming, and put them back at "
			          "cutover; it needs to own those tables%s",
			          role, role, m->o.no_owner ? " (it will: --no-owner)" : "");
		}
	}
	if (m->o.online && strcmp(m->o.scope, "data-only") == 0)
	{
		/* the tables are there already: the guard changes them, so it must own them */
		if (!scope_list_tables(m->src, &f, &names, &n, errbuf, errlen))
			return mig_check_failed("target_owners", "%s", errbuf);
		strbuf_init(&foreign);
		ok = guard_unowned_tables(m->tgt, (const char *const *)names, n, &foreign, &nforeign,
		                          errbuf, errlen);
		scope_free(names, n);
		if (ok && nforeign > 0)
			snprintf(msg, sizeof(msg),
			         "the target's tables are owned by roles whose privileges the target role %s "
			         "lacks: %s; the apply must change their identity columns (and, since %s may "
			         "not SET session_replication_role, their triggers and foreign keys): GRANT "
			         "those roles to %s, or make %s their owner",
			         role, strbuf_data(&foreign), role, role, role);
		strbuf_free(&foreign);
		if (!ok)
			return mig_check_failed("target_owners", "%s", errbuf);
		return nforeign > 0 ? mig_check_failed("target_owners", "%s", msg) : true;
	}
	if (m->o.no_owner || strcmp(m->o.scope, "data-only") == 0)
		return true;
	if (!scope_list_tables(m->src, &f, &names, &n, errbuf, errlen))
		return mig_check_failed("target_owners", "%s", errbuf);
	strbuf_init(&foreign);
	/* online, the guard changes the tables: it needs their owners' privileges, not SET ROLE */
	ok = guard_foreign_owners(m->src, m->tgt, (const char *const *)names, n, m->o.online, &foreign,
	                          &nforeign, errbuf, errlen);
	scope_free(names, n);
	if (ok && nforeign > 0)
	{
		snprintf(msg, sizeof(msg),
		         "the source's objects are owned by roles the target role %s cannot become: %s. "
		         "Pass --no-owner to make %s the owner of everything restored (and "
		         "--no-privileges when GRANTs name roles the target lacks), or create those "
		         "roles on the target and GRANT them to %s%s",
		         role, strbuf_data(&foreign), role, role,
		         m->guard_full ? " (the guard must own the migrated tables, since the target "
		                         "role may not SET session_replication_role)"
		                       : "");
		strbuf_free(&foreign);
		if (!m->o.allow_restore_errors)
			return mig_check_failed("target_owners", "%s", msg);
		/* the operator accepts the restore's errors: its ALTER ... OWNER TO will fail */
		event_say("Validate", "warning", "%s (--allow-restore-errors: going on)", msg);
		return true;
	}
	strbuf_free(&foreign);
	if (!ok)
		return mig_check_failed("target_owners", "%s", errbuf);
	return true;
}

/*
 * Roles the source's GRANTs name (schemas, tables, columns, functions,
 * types, large objects, default privileges; owners' own entries aside) that
 * the target lacks: the restore's GRANT would fail on each. Refused before
 * anything is created, offering --no-privileges.
 */
static const char grantees_sql[] =
    "WITH g AS ("
    " SELECT (aclexplode(nspacl)).grantee, nspowner AS owner, nspname AS nsp"
    "  FROM pg_catalog.pg_namespace"
    " UNION ALL SELECT (aclexplode(c.relacl)).grantee, c.relowner, n.nspname"
    "  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " UNION ALL SELECT (aclexplode(a.attacl)).grantee, c.relowner, n.nspname"
    "  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
    "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE a.attacl IS NOT NULL"
    " UNION ALL SELECT (aclexplode(p.proacl)).grantee, p.proowner, n.nspname"
    "  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
    " UNION ALL SELECT (aclexplode(t.typacl)).grantee, t.typowner, n.nspname"
    "  FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
    " UNION ALL SELECT (aclexplode(lomacl)).grantee, lomowner, 'public'"
    "  FROM pg_catalog.pg_largeobject_metadata"
    " UNION ALL SELECT (aclexplode(defaclacl)).grantee, defaclrole, 'public'"
    "  FROM pg_catalog.pg_default_acl)"
    " SELECT DISTINCT r.rolname FROM g JOIN pg_catalog.pg_roles r ON r.oid = g.grantee"
    " WHERE g.grantee <> g.owner AND g.nsp NOT LIKE 'pg\\_%' AND g.nsp <> 'information_schema'"
    " ORDER BY 1";

static bool
mig_validate_grantees(mig *m, char *errbuf, size_t errlen)
{
	PGresult *res;
	strbuf missing;
	int nmissing = 0;
	bool ok = true;

	if (m->o.no_privileges || strcmp(m->o.scope, "data-only") == 0)
		return true;
	res = PQexec(m->src, grantees_sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		snprintf(errbuf, errlen, "could not read the source's privileges: %s",
		         PQerrorMessage(m->src));
		PQclear(res);
		return mig_check_failed("target_grantees", "%s", errbuf);
	}
	strbuf_init(&missing);
	for (int i = 0; ok && i < PQntuples(res); i++)
	{
		const char *params[1] = {PQgetvalue(res, i, 0)};
		PGresult *r = PQexecParams(m->tgt, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
		                           1, NULL, params, NULL, NULL, 0);

		ok = PQresultStatus(r) == PGRES_TUPLES_OK;
		if (!ok)
			snprintf(errbuf, errlen, "could not read the target's roles: %s",
			         PQerrorMessage(m->tgt));
		else if (PQntuples(r) == 0 && nmissing++ < 20)
			ok = strbuf_appendf(&missing, "%s%s", nmissing > 1 ? ", " : "", params[0]);
		PQclear(r);
	}
	PQclear(res);
	if (ok && nmissing > 0)
	{
		char msg[2048];

		snprintf(msg, sizeof(msg),
		         "the source GRANTs privileges to %d role%s the target lacks: %s%s. Pass "
		         "--no-privileges to restore without the source's GRANT and REVOKE (then grant "
		         "on the target what its roles need), or create those roles on the target first",
		         nmissing, nmissing == 1 ? "" : "s", strbuf_data(&missing),
		         nmissing > 20 ? ", ..." : "");
		strbuf_free(&missing);
		if (!m->o.allow_restore_errors)
			return mig_check_failed("target_grantees", "%s", msg);
		event_say("Validate", "warning", "%s (--allow-restore-errors: going on)", msg);
		return true;
	}
	strbuf_free(&missing);
	if (!ok)
		return mig_check_failed("target_grantees", "%s", errbuf[0] ? errbuf : "out of memory");
	return true;
}

static bool
mig_validate(mig *m, char *errbuf, size_t errlen)
{
	char buf[256], path[600];
	int major;
	event e;

	if (!mig_tool(m, "pg_dump", path, sizeof(path)))
		return false;
	major = mig_tool_major(path);
	if (!mig_tool(m, "pg_restore", path, sizeof(path)))
		return false;
	if ((m->src = mig_connect(m->o.source, "source", errbuf, errlen)) == NULL)
		return mig_check_failed("source_reachable", "%s", errbuf);
	if ((m->tgt = mig_connect(m->o.target, "target", errbuf, errlen)) == NULL)
		return mig_check_failed("target_reachable", "%s", errbuf);
	m->src_version = PQserverVersion(m->src);
	if (major && major < m->src_version / 10000)
	{
		snprintf(buf, sizeof(buf),
		         "pg_dump %d is older than the source server (%d): install "
		         "client tools %d or newer, or set PG_BINDIR",
		         major, m->src_version / 10000, m->src_version / 10000);
		return mig_check_failed("client_tools", "%s", buf);
	}
	if (!mig_value(m->tgt, "SELECT pg_is_in_recovery()", buf, sizeof(buf), errbuf, errlen))
		return mig_check_failed("target_not_in_recovery", "%s", errbuf);
	if (strcmp(buf, "t") == 0)
		return mig_check_failed("target_not_in_recovery",
		                        "the target is a standby (in recovery): point --target at a "
		                        "primary",
		                        NULL);
	if (!mig_value(m->tgt,
	               "SELECT has_database_privilege(current_database(), 'CREATE') AND "
	               "has_schema_privilege('public', 'CREATE') IS NOT FALSE",
	               buf, sizeof(buf), errbuf, errlen) ||
	    strcmp(buf, "t") != 0)
		return mig_check_failed("target_privileges",
		                        "the target role may not create schemas and tables in the target "
		                        "database: GRANT CREATE ON DATABASE ... (and on schema public)",
		                        NULL);
	if (m->o.online)
	{
		if (!mig_value(m->src, "SHOW wal_level", buf, sizeof(buf), errbuf, errlen) ||
		    strcmp(buf, "logical") != 0)
			return mig_check_failed("source_wal_level",
			                        "the source has wal_level = %s: set wal_level = logical in "
			                        "postgresql.conf and restart it",
			                        buf);
		if (!mig_value(m->src, "SHOW max_replication_slots", buf, sizeof(buf), errbuf, errlen) ||
		    atoi(buf) < 1)
			return mig_check_failed("source_replication_slots",
			                        "the source has max_replication_slots = %s: raise it and "
			                        "restart",
			                        buf);
		if (!mig_value(m->src, "SHOW max_wal_senders", buf, sizeof(buf), errbuf, errlen) ||
		    atoi(buf) < 1)
			return mig_check_failed("source_wal_senders",
			                        "the source has max_wal_senders = %s: raise it and restart",
			                        buf);
		if (!mig_value(m->src,
		               "SELECT rolreplication OR rolsuper FROM pg_catalog.pg_roles "
		               "WHERE rolname = current_user",
		               buf, sizeof(buf), errbuf, errlen) ||
		    strcmp(buf, "t") != 0)
			return mig_check_failed("source_role_replication",
			                        "the source role may not replicate: ALTER ROLE ... "
			                        "REPLICATION (or use a role that may)",
			                        NULL);
	}
	if (!m->o.drop_target_first && !m->o.resume && strcmp(m->o.scope, "data-only") != 0)
	{
		if (!mig_value(m->tgt,
		               "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
		               "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT "
		               "IN ('pg_catalog', 'information_schema', '" PGDBM_SCHEMA "') AND n.nspname "
		               "NOT LIKE 'pg\\_%'",
		               buf, sizeof(buf), errbuf, errlen))
			return mig_check_failed("target_empty", "%s", errbuf);
		if (atoi(buf) > 0)
			return mig_check_failed("target_empty",
			                        "the target database already has %s tables: migrate into an "
			                        "empty database, or pass --drop-target-first",
			                        buf);
	}
	{
		strbuf tables;

		strbuf_init(&tables);
		if (!mig_tables(m, &tables, &m->ntables, errbuf, errlen))
			m->ntables = 0;
		strbuf_free(&tables);
	}
	if (m->o.online && !mig_validate_source(m, errbuf, errlen))
		return false;
	if (m->o.online)
		mig_warn_unstreamed(m);
	if (!mig_validate_target_role(m, errbuf, errlen) || !mig_validate_grantees(m, errbuf, errlen))
		return false;
	event_begin(&e, "Validate");
	event_str(&e, "mode", m->o.online ? "online" : "offline");
	event_int(&e, "tables", m->ntables);
	event_str(&e, "source", m->src_ci.safe);
	event_str(&e, "target", m->tgt_ci.safe);
	event_end(&e, "checks passed");
	return true;
}

/* ------------------------------------------------------------ PrepareSnapshot */

static bool mig_save_token(mig *m, resume_stage stage, char *errbuf, size_t errlen);

/*
 * Resume after the cutover: the target has every change; the slot (if the
 * interrupted run had not dropped it yet) and the publication are dropped at
 * the end as usual.
 */
static bool
mig_reattach_after_cutover(mig *m, char *errbuf, size_t errlen)
{
	bool found;

	if (!replconn_open(&m->rc, m->o.source, errbuf, errlen) ||
	    !replconn_find_slot(&m->rc, m->o.slot, &found, &m->slot, errbuf, errlen))
	{
		/* a lost slot does not matter any more */
		if (strcmp(m->slot.wal_status, "lost") != 0)
			return false;
		found = true;
		errbuf[0] = '\0';
	}
	replconn_close(&m->rc);
	m->created_slot = found;
	m->created_publication = m->token.created_publication;
	m->created_keyless_publication = m->token.created_keyless_publication;
	event_say("PrepareSnapshot", "info",
	          "resuming after the cutover: every change was applied; finishing up");
	return true;
}

/* Resume: re-attach to the interrupted run's slot. */
static bool
mig_reattach(mig *m, char *errbuf, size_t errlen)
{
	bool found;
	char lsn[PGO_LSN_STRLEN];

	if (!replconn_open(&m->rc, m->o.source, errbuf, errlen) ||
	    !replconn_find_slot(&m->rc, m->o.slot, &found, &m->slot, errbuf, errlen))
		return false;
	if (!found)
	{
		snprintf(errbuf, errlen,
		         "cannot resume: the replication slot \"%s\" of the interrupted run is gone from "
		         "the "
		         "source, and with it the changes since the dump; start over with --force-clean "
		         "--drop-target-first",
		         m->o.slot);
		return false;
	}
	m->created_slot = true;
	m->created_publication = m->token.created_publication;
	m->created_keyless_publication = m->token.created_keyless_publication;
	event_say("PrepareSnapshot", "info", "resuming: slot %s found (confirmed up to %s)",
	          m->slot.name, pgo_lsn_format(m->slot.consistent_point, lsn));
	return true;
}

static bool
mig_prepare_snapshot(mig *m, char *errbuf, size_t errlen)
{
	char buf[64];
	bool found, created_main = false, created_keyless = false, ok;
	event e;

	/* with the operator's consent, before the slot exists */
	if (!srcplan_set_identity(&m->plan, m->src, errbuf, errlen))
		return false;
	ok = srcplan_create_publications(&m->plan, m->src, &created_main, &created_keyless, errbuf,
	                                 errlen);
	m->created_publication = created_main;
	m->created_keyless_publication = created_keyless;
	/* so that a kill before the slot exists still drops the publications on --resume */
	if ((created_main || created_keyless) && !mig_save_token(m, RESUME_STARTED, errbuf, errlen))
		return false;
	if (!ok)
		return false;
	if (!replconn_open(&m->rc, m->o.source, errbuf, errlen))
		return false;
	{
		const char *pubs[3] = {m->o.publication, NULL, NULL};

		if (m->plan.nkeyless > 0)
			pubs[1] = m->plan.keyless_publication;
		if (!replconn_check_identity(&m->rc, pubs, errbuf, errlen))
			return mig_check_failed("replica_identity", "%s", errbuf);
	}
	if (!replconn_find_slot(&m->rc, m->o.slot, &found, &m->slot, errbuf, errlen))
		return false;
	if (found)
	{
		snprintf(errbuf, errlen,
		         "replication slot \"%s\" already exists on the source: a previous run left it; "
		         "drop it (SELECT pg_drop_replication_slot('%s')) or choose another --slot-name",
		         m->o.slot, m->o.slot);
		return false;
	}
	if (!replconn_create_slot(&m->rc, m->o.slot, false, &m->slot, errbuf, errlen))
		return false;
	m->created_slot = true;
	event_begin(&e, "PrepareSnapshot");
	event_str(&e, "slot", m->slot.name);
	event_str(&e, "snapshot", m->slot.snapshot);
	event_str(&e, "consistent_lsn", pgo_lsn_format(m->slot.consistent_point, buf));
	event_str(&e, "publication", m->o.publication);
	if (m->plan.nkeyless > 0)
		event_str(&e, "keyless_publication", m->plan.keyless_publication);
	event_end(&e, "slot created with an exported snapshot%s%s",
	          m->created_publication ? ", publication created" : "",
	          m->created_keyless_publication
	              ? ", insert-only publication created for the tables without a key"
	              : "");
	return true;
}

/* --------------------------------------------------------------- Dump/Restore */

/* Progress lines on a terminal (from the children's --verbose output). */
static bool
mig_progress(const mig *m)
{
	return !m->o.verbose && !m->o.json && isatty(STDERR_FILENO) && m->ntables > 0;
}

static bool
mig_run_child(mig *m, const char *stage, const char *const *argv, const char *password,
              bool *warned, char *errbuf, size_t errlen)
{
	child_spec spec = {.argv = argv,
	                   .password = password,
	                   .interrupted = &mig_signals,
	                   .show_stderr = m->o.verbose};

	if (mig_progress(m))
	{
		spec.progress_match =
		    strcmp(stage, "Dump") == 0 ? "dumping contents of table" : "processing data for table";
		spec.progress_label = stage;
		spec.progress_total = m->ntables;
	}
	child_result res;
	bool ok;

	*warned = false;
	if (m->o.dry_run)
	{
		/* the exact command; the password would be in the child's environment only */
		printf("  %s", password ? "PGPASSWORD=******** " : "");
		for (int i = 0; argv[i]; i++)
		{
			bool plain =
			    argv[i][strspn(argv[i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			                            "0123456789-_=./:,")] == '\0';

			if (plain)
				printf("%s%s", i ? " " : "", argv[i]);
			else
			{
				printf("%s'", i ? " " : "");
				for (const char *c = argv[i]; *c; c++)
					if (*c == '\'')
						fputs("'\\''", stdout);
					else
						putchar(*c);
				putchar('\'');
			}
		}
		putchar('\n');
		return true;
	}
	if (!child_run(&spec, &res, errbuf, errlen))
		return false;
	if (res.interrupted)
	{
		snprintf(errbuf, errlen, "interrupted during %s", stage);
		strbuf_free(&res.summary);
		return false;
	}
	ok = res.exit_code == 0;
	if (!ok && strcmp(stage, "Restore") == 0 && res.exit_code == 1 && m->o.allow_restore_errors)
	{
		event e;

		event_begin(&e, stage);
		event_level(&e, "warning");
		event_int(&e, "errors", res.error_lines);
		event_end(&e, "pg_restore reported %d errors (--allow-restore-errors):\n%s",
		          res.error_lines, strbuf_data(&res.summary));
		*warned = true;
		ok = true;
	}
	else if (!ok)
		snprintf(errbuf, errlen, "%s exited with %d%s%s%s", argv[0], res.exit_code,
		         res.error_lines ? "; its errors by kind:\n" : "", strbuf_data(&res.summary),
		         strcmp(stage, "Restore") == 0 && res.exit_code == 1
		             ? "(--allow-restore-errors accepts them when the data was restored)"
		             : "");
	strbuf_free(&res.summary);
	return ok;
}

/*
 * --force-clean: remove a previous run's dump directory, but only when all it
 * holds is what pg_dump writes there (a wrong --dump-path must not cost the
 * operator a directory).
 */
static bool
mig_remove_dump(const char *path, bool check_only, char *errbuf, size_t errlen)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char file[1400];

	if (d == NULL)
	{
		snprintf(errbuf, errlen, "cannot read the dump path \"%s\": %s", path, strerror(errno));
		return false;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    !dumprestore_is_dump_file(de->d_name))
		{
			snprintf(errbuf, errlen,
			         "--force-clean: \"%s\" holds \"%s\", which pg_dump does not write: it does "
			         "not look like a dump directory, so it is left alone; remove it yourself or "
			         "choose another --dump-path",
			         path, de->d_name);
			closedir(d);
			return false;
		}
	if (check_only)
	{
		closedir(d);
		return true;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
	{
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
		if (unlink(file) != 0)
		{
			snprintf(errbuf, errlen, "could not remove \"%s\": %s", file, strerror(errno));
			closedir(d);
			return false;
		}
	}
	closedir(d);
	if (rmdir(path) != 0)
	{
		snprintf(errbuf, errlen, "could not remove \"%s\": %s", path, strerror(errno));
		return false;
	}
	return true;
}

/*
 * --table and --exclude-table as the quoted names they resolve to on the
 * source (a dry run looks nothing up): *inc and *exc are malloc'd
 * (scope_free), also after a failure.
 */
static bool
mig_dump_tables(mig *m, char ***inc, int *ninc, char ***exc, int *nexc, char *errbuf, size_t errlen)
{
	scope_filters f = mig_scope(m);

	*inc = *exc = NULL;
	*ninc = *nexc = 0;
	if (m->o.ntables && !m->o.dry_run)
	{
		scope_filters t = {.tables = f.tables};

		if (!scope_list_tables(m->src, &t, inc, ninc, errbuf, errlen))
			return false;
		if (*ninc == 0)
		{
			snprintf(errbuf, errlen, "no table on the source matches --table %s", m->o.tables[0]);
			return false;
		}
	}
	if (m->o.nex_tables && !m->o.dry_run)
	{
		scope_filters t = {.tables = f.exclude_tables};

		if (!scope_list_tables(m->src, &t, exc, nexc, errbuf, errlen))
			return false;
	}
	return true;
}

static bool
mig_dump(mig *m, char *errbuf, size_t errlen)
{
	dumprestore_source src = {.bindir = m->bindir,
	                          .conninfo = m->src_ci.safe,
	                          .snapshot = m->slot.snapshot,
	                          .progress = mig_progress(m)};
	dumprestore_dump d;
	char **inc, **exc;
	int ninc, nexc;
	bool warned, ok;
	struct stat st;
	event e;
	int64_t t0 = cli_now_ms();

	if (!m->o.dry_run && stat(m->o.dump_path, &st) == 0)
	{
		if (!m->o.force_clean)
		{
			snprintf(errbuf, errlen,
			         "the dump path \"%s\" exists (a previous run's?): remove it or pass "
			         "--force-clean",
			         m->o.dump_path);
			return false;
		}
		if (!mig_remove_dump(m->o.dump_path, false, errbuf, errlen))
			return false;
	}
	ok = mig_dump_tables(m, &inc, &ninc, &exc, &nexc, errbuf, errlen);
	if (ok)
	{
		src.tables = inc;
		src.ntables = ninc;
		src.ex_tables = exc;
		src.nex_tables = nexc;
		ok = dumprestore_dump_argv(&d, &m->o, &src, errbuf, errlen);
		if (ok)
		{
			if (!m->o.dry_run)
				event_say("Dump", "info", "pg_dump to %s with %d job%s", m->o.dump_path, m->o.jobs,
				          m->o.jobs > 1 ? "s" : "");
			ok = mig_run_child(m, "Dump", d.argv, m->src_ci.password, &warned, errbuf, errlen);
		}
		dumprestore_dump_free(&d);
	}
	scope_free(inc, ninc);
	scope_free(exc, nexc);
	if (!ok)
		return false;
	if (m->o.dry_run)
		return true;
	event_begin(&e, "Dump");
	event_num(&e, "seconds", (double)(cli_now_ms() - t0) / 1000.0);
	event_end(&e, "dump done");
	return true;
}

/*
 * --fast-restore-settings. The previous values are saved next to the dump
 * before anything changes, so that even after a crash the next run (any run
 * with the same --dump-path) puts them back first.
 */
static const char *const fast_settings[][2] = {{"fsync", "off"},
                                               {"full_page_writes", "off"},
                                               {"synchronous_commit", "off"},
                                               {"max_wal_size", "16GB"}};
#define N_FAST_SETTINGS (sizeof(fast_settings) / sizeof(fast_settings[0]))

static void
mig_settings_path(const mig *m, char *buf, size_t size)
{
	snprintf(buf, size, "%s.settings", m->o.dump_path);
}

/* Put back what a settings file records (one "name\tauto|default\tvalue" line each). */
static bool
mig_restore_settings(mig *m, char *errbuf, size_t errlen)
{
	char path[1100], line[512];
	FILE *f;
	bool ok = true;

	mig_settings_path(m, path, sizeof(path));
	f = fopen(path, "r");
	if (f == NULL)
		return true;
	while (ok && fgets(line, sizeof(line), f))
	{
		char *name = strtok(line, "\t\n"), *how = strtok(NULL, "\t\n"), *value = strtok(NULL, "\n");
		char *qv, sql[600];

		if (name == NULL || how == NULL)
			continue;
		if (strcmp(how, "auto") == 0 && value)
		{
			qv = PQescapeLiteral(m->tgt, value, strlen(value));
			snprintf(sql, sizeof(sql), "ALTER SYSTEM SET %s = %s", name, qv ? qv : "''");
			PQfreemem(qv);
		}
		else
			snprintf(sql, sizeof(sql), "ALTER SYSTEM RESET %s", name);
		ok = mig_exec(m->tgt, sql, errbuf, errlen);
	}
	fclose(f);
	if (ok && (ok = mig_exec(m->tgt, "SELECT pg_reload_conf()", errbuf, errlen)))
	{
		unlink(path);
		event_say("Restore", "info",
		          "target settings put back (fsync, full_page_writes, "
		          "synchronous_commit, max_wal_size)");
	}
	return ok;
}

static bool
mig_fast_settings(mig *m, char *errbuf, size_t errlen)
{
	char path[1100];
	FILE *f;
	int fd;

	mig_settings_path(m, path, sizeof(path));
	/* for our user only, whatever the umask (and a file left by an older run too) */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	f = fd >= 0 && fchmod(fd, 0600) == 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL)
	{
		snprintf(errbuf, errlen, "could not write %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	for (size_t i = 0; i < N_FAST_SETTINGS; i++)
	{
		const char *params[1] = {fast_settings[i][0]};
		/* from the files themselves (a session sees a reload only later) */
		PGresult *res =
		    PQexecParams(m->tgt,
		                 "SELECT setting FROM pg_catalog.pg_file_settings WHERE name = $1 "
		                 "AND sourcefile LIKE '%postgresql.auto.conf' ORDER BY seqno DESC "
		                 "LIMIT 1",
		                 1, NULL, params, NULL, NULL, 0);

		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			fprintf(f, "%s\tauto\t%s\n", fast_settings[i][0], PQgetvalue(res, 0, 0));
		else
			fprintf(f, "%s\tdefault\n", fast_settings[i][0]);
		PQclear(res);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0)
	{
		snprintf(errbuf, errlen, "could not write %s", path);
		return false;
	}
	for (size_t i = 0; i < N_FAST_SETTINGS; i++)
	{
		char sql[256];

		snprintf(sql, sizeof(sql), "ALTER SYSTEM SET %s = '%s'", fast_settings[i][0],
		         fast_settings[i][1]);
		if (!mig_exec(m->tgt, sql, errbuf, errlen))
		{
			char ignored[256];

			(void)mig_restore_settings(m, ignored, sizeof(ignored));
			return false;
		}
	}
	if (!mig_exec(m->tgt, "SELECT pg_reload_conf()", errbuf, errlen))
		return false;
	event_say("Restore", "warning",
	          "target running with fsync = off and full_page_writes = off for the restore: do not "
	          "use it for anything else until this says they are back");
	return true;
}

static bool mig_restore_sections(mig *m, char *errbuf, size_t errlen);

static bool
mig_restore(mig *m, char *errbuf, size_t errlen)
{
	bool ok;
	char err2[512];

	if (!m->o.fast_restore || m->o.dry_run)
		return mig_restore_sections(m, errbuf, errlen);
	if (!mig_fast_settings(m, errbuf, errlen))
		return false;
	ok = mig_restore_sections(m, errbuf, errlen);
	/* whatever happened, the previous values go back */
	if (!mig_restore_settings(m, err2, sizeof(err2)))
	{
		event_say("Restore", "error", "could not put the target's settings back: %s", err2);
		if (ok)
			snprintf(errbuf, errlen, "could not put the target's settings back: %s", err2);
		return false;
	}
	if (ok)
		(void)mig_exec(m->tgt, "CHECKPOINT", err2, sizeof(err2));
	return ok;
}

static bool
mig_restore_sections(mig *m, char *errbuf, size_t errlen)
{
	dumprestore_restore r;
	bool any_warning = false;
	int64_t t0 = cli_now_ms();
	event e;

	dumprestore_restore_argv(&r, &m->o, m->bindir, m->tgt_ci.safe, mig_progress(m));
	for (int s = 0; s < r.npasses; s++)
	{
		bool warned;

		if (!m->o.dry_run)
			event_say("Restore", "info", "pg_restore %s", r.section[s]);
		if (!mig_run_child(m, "Restore", r.argv[s], m->tgt_ci.password, &warned, errbuf, errlen))
			return false;
		any_warning |= warned;
	}
	if (m->o.dry_run)
	{
		if (m->o.analyze && strcmp(m->o.scope, "schema-only") != 0)
			printf("  ANALYZE (on the target)\n");
		return true;
	}
	if (m->o.analyze && strcmp(m->o.scope, "schema-only") != 0)
	{
		event_say("Restore", "info", "ANALYZE on the target");
		/* a role that is not a superuser gets one warning per shared catalog it skips */
		if (!mig_exec(m->tgt, "SET client_min_messages TO error", errbuf, errlen) ||
		    !mig_exec(m->tgt, "ANALYZE", errbuf, errlen) ||
		    !mig_exec(m->tgt, "SET client_min_messages TO warning", errbuf, errlen))
			return false;
	}
	event_begin(&e, "Restore");
	event_num(&e, "seconds", (double)(cli_now_ms() - t0) / 1000.0);
	event_end(&e, "restore done%s", any_warning ? " with errors (see above)" : "");
	return true;
}

/* ------------------------------------------------------------- StreamApply */

/*
 * The end position of a cutover: past the commit record of every source
 * transaction acknowledged to its client before now. The WAL flush position
 * is not: a commit with synchronous_commit = off is acknowledged before its
 * record is flushed. So read the insert position, then commit a transaction
 * of our own that writes WAL (a transactional logical message, which pgoutput
 * does not publish without its messages option) with synchronous_commit =
 * local: its commit flushes WAL past the insert position, so the walsender
 * can send everything below it. Never waits for a synchronous standby.
 */
static bool
mig_end_position(mig *m, pgo_lsn *out, char *errbuf, size_t errlen)
{
	char text[64], flush_text[64];
	pgo_lsn insert, flush = 0;
	bool ok;

	if (!mig_exec(m->src, "BEGIN", errbuf, errlen))
		return false;
	ok = mig_exec(m->src, "SET LOCAL synchronous_commit = local", errbuf, errlen) &&
	     mig_value(m->src, "SELECT pg_catalog.pg_current_wal_insert_lsn()", text, sizeof(text),
	               errbuf, errlen);
	if (ok && !mig_exec(m->src,
	                    "SELECT pg_catalog.pg_logical_emit_message(true, 'pg_dbmigrator', "
	                    "'cutover')",
	                    errbuf, errlen))
	{
		/* not allowed to this role: the WAL writer flushes by itself, we wait for it below */
		PQclear(PQexec(m->src, "ROLLBACK"));
		ok = mig_exec(m->src, "BEGIN", errbuf, errlen);
	}
	if (!ok || !mig_exec(m->src, "COMMIT", errbuf, errlen))
	{
		PQclear(PQexec(m->src, "ROLLBACK"));
		return false;
	}
	if (!pgo_lsn_parse(text, &insert))
	{
		snprintf(errbuf, errlen, "the source returned an invalid WAL position \"%s\"", text);
		return false;
	}
	/* flushed up to there (at once after our commit; else within wal_writer_delay) */
	for (int i = 0; i < 300 && flush < insert; i++)
	{
		if (i > 0)
			usleep(100 * 1000);
		if (!mig_value(m->src, "SELECT pg_catalog.pg_current_wal_flush_lsn()", flush_text,
		               sizeof(flush_text), errbuf, errlen) ||
		    !pgo_lsn_parse(flush_text, &flush))
			return false;
	}
	if (flush < insert)
	{
		snprintf(errbuf, errlen, "the source's WAL was not flushed up to %s within 30 s", text);
		return false;
	}
	*out = insert;
	return true;
}

/* Called from the stream loop about every 100 ms: lag events, cutover, limits. */
static void
mig_tick(void *arg)
{
	mig *m = arg;
	int64_t now = cli_now_ms();
	char flush_text[64], err[512];
	pgo_lsn flush = 0, applied, received;
	char a[PGO_LSN_STRLEN], r[PGO_LSN_STRLEN], f[PGO_LSN_STRLEN];

	if (mig_abort)
	{
		m->so->stop = &mig_abort;
		return;
	}
	if (!m->cutover && (mig_signals || (m->o.max_runtime &&
	                                    now - m->start_ms >= (int64_t)m->o.max_runtime * 1000)))
	{
		/* everything committed on the source before now is applied, then we stop */
		if (!mig_end_position(m, &flush, err, sizeof(err)))
		{
			/* tried again at the next tick, on a fresh connection */
			event_say("Cutover", "warning", "cannot read the source's WAL position: %s", err);
			pgsession_refresh(m->src, PGSESSION_SOURCE);
			return;
		}
		m->cutover = true;
		m->cutover_ms = now;
		m->cutover_lsn = flush;
		m->so->endpos = flush;
		receiver_request_reply(m->rcv);
		event_say("Cutover", "info",
		          "%s: applying everything up to the source's WAL position %s, then cutting over "
		          "(Ctrl+C again aborts)",
		          mig_signals ? "interrupt" : "--max-runtime-seconds reached",
		          pgo_lsn_format(flush, flush_text));
		return;
	}
	if (m->cutover)
	{
		if (now - m->cutover_ms > (int64_t)m->o.cutover_timeout * 1000)
		{
			m->timed_out = true;
			m->so->stop = &mig_signals; /* set: the loop stops */
		}
		else if ((now - m->cutover_ms) % 1000 < 100)
			receiver_request_reply(m->rcv);
		return;
	}
	if (now < m->next_poll_ms)
		return;
	m->next_poll_ms = now + (int64_t)m->o.poll_secs * 1000;
	if (m->plan.nkeyless > 0 && srcplan_watch(&m->plan, m->src, err, sizeof(err)) == 1)
	{
		/* an UPDATE or DELETE the stream cannot carry: stop before any cutover */
		snprintf(m->halt_msg, sizeof(m->halt_msg), "%s", err);
		m->restart = true;
		m->so->stop = &mig_halt;
		return;
	}
	if (!mig_value(m->src, "SELECT pg_current_wal_flush_lsn()", flush_text, sizeof(flush_text), err,
	               sizeof(err)) ||
	    !pgo_lsn_parse(flush_text, &flush))
		return;
	applied = receiver_flush_lsn(m->rcv);
	received = atomic_load(&m->rcv->received_lsn);
	{
		long long lag = flush > applied ? (long long)(flush - applied) : 0;
		event e;

		double lag_secs = 0;

		/* how old the oldest change not yet applied is, roughly: the last commit seen */
		if (received > applied && m->app->last_commit_time > 0)
			lag_secs = (double)(replconn_now() - m->app->last_commit_time) / 1e6;
		if (lag_secs < 0)
			lag_secs = 0;
		event_begin(&e, "Lag");
		event_int(&e, "lag_bytes", lag);
		event_num(&e, "lag_seconds", lag_secs);
		event_str(&e, "source_lsn", pgo_lsn_format(flush, f));
		event_str(&e, "received_lsn", pgo_lsn_format(received, r));
		event_str(&e, "applied_lsn", pgo_lsn_format(applied, a));
		event_int(&e, "row_changes",
		          (int64_t)(m->app->stats.inserts + m->app->stats.updates + m->app->stats.deletes));
		event_int(&e, "transactions", (int64_t)m->app->stats.txns);
		event_end(&e, "replication lag %lld bytes", lag);
		if (!m->caught_up && lag <= m->o.lag_threshold)
		{
			m->caught_up = true;
			event_begin(&e, "CaughtUp");
			event_int(&e, "lag_bytes", lag);
			event_end(&e, "the target caught up (lag %lld bytes <= %lld): press Ctrl+C to cut over",
			          lag, m->o.lag_threshold);
		}
	}
}

/* Tear down one streaming attempt (keeps the slot and the target's progress). */
static void
mig_stream_teardown(mig *m, pipeline *pl)
{
	pipeline_abandon(pl, NULL, 0);
	replconn_close(&m->rc);
	pipeline_free(pl);
}

/*
 * Where the target is: the end of the last source transaction committed on
 * it, or, when this run applied nothing, where streaming started (the dump's
 * snapshot or the progress row): never 0/0.
 */
static pgo_lsn
mig_applied_lsn(const mig *m, const applier *app)
{
	return app->committed_lsn > m->stream_start_lsn ? app->committed_lsn : m->stream_start_lsn;
}

/* Wait ms for a reconnect, in small steps; false if the operator aborts meanwhile. */
static bool
mig_backoff(int ms)
{
	for (int waited = 0; waited < ms; waited += 100)
	{
		if (mig_abort)
			return false;
		usleep(100 * 1000);
	}
	return !mig_abort;
}

static int
mig_stream(mig *m, char *errbuf, size_t errlen)
{
	static pipeline pl; /* big: the decoder's column storage */
	stream_opts so = {0};
	apply_opts ao = {0};
	const char *pubs[3] = {m->o.publication, NULL, NULL};
	int rc = EXIT_ERROR, backoff_ms = 1000;
	stream_end end = STREAM_FAILED;
	static volatile sig_atomic_t never = 0;
	/*
	 * --reconnect-max-wait counts from the last progress: WAL received or a
	 * target commit past anything before, or a connection that held for the
	 * whole window. A reconnect that succeeds and dies again before getting
	 * anywhere does not start the window over.
	 */
	int64_t last_progress_ms = 0, attempt_ms = 0;
	pgo_lsn furthest = 0;

	if (m->plan.nkeyless > 0)
		pubs[1] = m->plan.keyless_publication;
	ao.target = m->o.target;
	ao.slot_name = m->o.slot;
	ao.group_txns = m->o.group_commit;
	ao.skip_missing = m->o.skip_missing;
	ao.skip_lsn = m->o.skip_lsn;
	/* the progress row is this source's and this run's (the slot as created) */
	ao.source_system = m->rc.system_id;
	ao.run_lsn = m->token.consistent_lsn;
	so.stop = &never;
	so.tick = mig_tick;
	so.tick_arg = m;
	m->so = &so;
	m->start_ms = cli_now_ms();
	m->next_poll_ms = m->start_ms;
	for (int attempt = 0;; attempt++)
	{
		replstart start = {0};
		bool found;

		if (attempt > 0)
		{
			/* a lost connection: start over from the slot and the target's progress row */
			int64_t now = cli_now_ms();

			mig_stream_teardown(m, &pl);
			m->rcv = NULL;
			m->app = NULL;
			if (now - last_progress_ms > (int64_t)m->o.reconnect_max_wait * 1000)
			{
				char why[1024];

				snprintf(why, sizeof(why), "%s", errbuf);
				snprintf(errbuf, errlen,
				         "gave up reconnecting: no progress for %lld s (--reconnect-max-wait %d): "
				         "%s; the slot is kept: run again with --resume once the cause is fixed",
				         (long long)((now - last_progress_ms) / 1000), m->o.reconnect_max_wait,
				         why);
				goto done;
			}
			event_say("Reconnect", "warning", "%s; reconnecting in %d s", errbuf,
			          backoff_ms / 1000);
			if (!mig_backoff(backoff_ms))
			{
				rc = EXIT_ABORTED;
				snprintf(errbuf, errlen, "aborted while reconnecting; the slot \"%s\" is kept",
				         m->o.slot);
				goto done;
			}
			backoff_ms = backoff_ms * 2 > 10000 ? 10000 : backoff_ms * 2;
			errbuf[0] = '\0';
			if (!replconn_open(&m->rc, m->o.source, errbuf, errlen))
				continue;
			if (!replconn_find_slot(&m->rc, m->o.slot, &found, &m->slot, errbuf, errlen))
			{
				/* invalidated (max_slot_wal_keep_size): no reconnect brings the changes back */
				if (strcmp(m->slot.wal_status, "lost") == 0)
				{
					m->slot_gone = true;
					goto done;
				}
				continue;
			}
			if (!found)
			{
				m->slot_gone = true;
				snprintf(errbuf, errlen,
				         "the replication slot \"%s\" is gone from the source (dropped or "
				         "invalidated): the changes since the dump are lost to this migration; "
				         "start over with --force-clean --drop-target-first",
				         m->o.slot);
				goto done;
			}
		}
		if (!pipeline_init(&pl, apply_rel_free, errbuf, errlen))
			goto done;
		/* a reconnect of this run finds its own row; a resumed run must find its own */
		ao.resuming = m->o.resume || attempt > 0;
		ao.guarded = m->guard_applied;
		if (!pipeline_open_applier(&pl, &ao, errbuf, errlen))
		{
			if (attempt == 0)
				goto done;
			continue; /* the target is not back yet */
		}
		if (pl.app.progress_note[0])
			event_say("StreamApply", "warning", "%s", pl.app.progress_note);
		if (!pipeline_prepare(&pl, m->o.ring_size, replconn_max_proto_version(m->rc.server_version),
		                      errbuf, errlen))
			goto done;
		start.slot = m->o.slot;
		start.start_lsn = pl.app.progress_lsn > m->slot.consistent_point ? pl.app.progress_lsn
		                                                                 : m->slot.consistent_point;
		if (attempt == 0)
		{
			furthest = start.start_lsn;
			last_progress_ms = cli_now_ms();
		}
		m->stream_start_lsn = start.start_lsn;
		start.proto_version = pipeline_proto_version(&pl);
		start.publications = pubs;
		start.messages = false;
		start.client_encoding = pl.app.encoding[0] ? pl.app.encoding : NULL;
		if (!replconn_start(&m->rc, &start, errbuf, errlen) ||
		    !pipeline_start(&pl, &m->rc, 10000, m->o.receiver_timeout * 1000, errbuf, errlen))
		{
			if (attempt == 0 && !m->rc.slot_busy)
				goto done;
			continue;
		}
		m->rcv = &pl.rcv;
		m->app = &pl.app;
		attempt_ms = cli_now_ms();
		if (attempt == 0)
			event_say("StreamApply", "info", "streaming from %s%s", m->slot.name,
			          pl.app.replica_role ? ""
			                              : " (without session_replication_role = replica: the "
			                                "guard holds the target's triggers and foreign keys)");
		else
		{
			char lsn[PGO_LSN_STRLEN];

			event_say("Reconnect", "info", "reconnected: streaming from %s again at %s",
			          m->slot.name, pgo_lsn_format(start.start_lsn, lsn));
		}
		end = pipeline_apply(&pl, &so, errbuf, errlen);
		if (end == STREAM_ENDPOS || end == STREAM_STOPPED)
			break;
		if (end == STREAM_CLOSED && errbuf[0] == '\0')
			snprintf(errbuf, errlen, "the source ended the replication stream");
		/*
		 * A lost connection to either server is retried; what no reconnect can
		 * heal (a message larger than the ring, a malformed message, an error
		 * of the walsender's that would come again) and anything else stops
		 * the run at once.
		 */
		if (!(end == STREAM_CLOSED || (end == STREAM_FAILED && apply_lost_target(&pl.app))) ||
		    (end == STREAM_CLOSED && pl.rcv.failed && pl.rcv.fatal))
			goto done;
		{
			int64_t now = cli_now_ms();
			pgo_lsn reached = atomic_load(&pl.rcv.received_lsn);

			if (pl.app.committed_lsn > reached)
				reached = pl.app.committed_lsn;
			if (reached > furthest || now - attempt_ms >= (int64_t)m->o.reconnect_max_wait * 1000)
			{
				furthest = reached > furthest ? reached : furthest;
				last_progress_ms = now;
				backoff_ms = 1000;
			}
		}
	}
	if (!pipeline_stop(&pl, errbuf, errlen))
		goto done;
	if (end == STREAM_STOPPED)
	{
		char lsn[PGO_LSN_STRLEN], cut[PGO_LSN_STRLEN];

		if (m->restart)
		{
			snprintf(errbuf, errlen, "%s", m->halt_msg);
			goto done;
		}
		if (m->timed_out)
		{
			snprintf(errbuf, errlen,
			         "cutover timed out after %d s: applied up to %s of %s; nothing was cut over "
			         "(the slot is kept); raise --cutover-timeout or check the target",
			         m->o.cutover_timeout, pgo_lsn_format(mig_applied_lsn(m, &pl.app), lsn),
			         pgo_lsn_format(m->cutover_lsn, cut));
			goto done;
		}
		event_say("Cutover", "warning", "aborted: applied up to %s; the slot \"%s\" is kept",
		          pgo_lsn_format(mig_applied_lsn(m, &pl.app), lsn), m->o.slot);
		rc = EXIT_ABORTED;
		goto done;
	}
	if (m->plan.nkeyless > 0)
	{
		/* once more, once every commit before the cutover moment is counted */
		if (m->cutover_ms + MIG_STATS_DELAY_MS(m->src_version) > cli_now_ms())
			event_say("Cutover", "info",
			          "waiting for the source's statistics to show every update and delete "
			          "before the interrupt on the tables without a key");
		int64_t wait = m->cutover_ms + MIG_STATS_DELAY_MS(m->src_version) - cli_now_ms();
		int changed;

		if (wait > 0 && !mig_backoff((int)wait))
		{
			rc = EXIT_ABORTED;
			snprintf(errbuf, errlen, "aborted before the cutover; the slot \"%s\" is kept",
			         m->o.slot);
			goto done;
		}
		changed = srcplan_watch(&m->plan, m->src, errbuf, errlen);
		if (changed != 0)
		{
			m->restart = changed == 1;
			goto done;
		}
	}
	{
		event e;
		char lsn[PGO_LSN_STRLEN], cut[PGO_LSN_STRLEN];
		double secs = (double)(cli_now_ms() - m->start_ms) / 1000.0;

		event_begin(&e, "Cutover");
		event_str(&e, "applied_lsn", pgo_lsn_format(mig_applied_lsn(m, &pl.app), lsn));
		if (m->cutover_lsn)
			event_str(&e, "cutover_lsn", pgo_lsn_format(m->cutover_lsn, cut));
		event_int(&e, "row_changes",
		          (int64_t)(pl.app.stats.inserts + pl.app.stats.updates + pl.app.stats.deletes));
		event_int(&e, "transactions", (int64_t)pl.app.stats.txns);
		if (m->o.skip_missing)
			event_int(&e, "missing_rows_skipped", (int64_t)pl.app.stats.missing_rows);
		event_num(&e, "seconds", secs);
		event_end(&e, "everything up to the cutover position is applied");
	}
	rc = EXIT_OK;
done:
	if (rc != EXIT_OK)
		pipeline_abandon(&pl, errbuf, errlen);
	m->rcv = NULL;
	m->app = NULL;
	m->so = NULL;
	pipeline_free(&pl);
	return rc;
}

/* ------------------------------------------------------ SequenceSync, cleanup */

static void
mig_sequence_sync(mig *m)
{
	PGresult *res = PQexec(m->src, "SELECT format('%I.%I', schemaname, sequencename), last_value "
	                               "FROM pg_catalog.pg_sequences WHERE last_value IS NOT NULL");
	int done = 0, failed = 0;
	event e;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		event_say("SequenceSync", "warning", "cannot read the source's sequences: %s",
		          PQerrorMessage(m->src));
		PQclear(res);
		return;
	}
	for (int i = 0; i < PQntuples(res); i++)
	{
		const char *params[2] = {PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)};
		/*
		 * never backwards: a run resumed after its cutover may find the
		 * application already drawing values on the target
		 */
		PGresult *r = PQexecParams(
		    m->tgt,
		    "SELECT pg_catalog.setval(s.seqrelid, CASE WHEN s.seqincrement > 0 "
		    "THEN greatest($2::bigint, coalesce(pg_catalog.pg_sequence_last_value(s.seqrelid), "
		    "$2::bigint)) ELSE least($2::bigint, "
		    "coalesce(pg_catalog.pg_sequence_last_value(s.seqrelid), $2::bigint)) END) "
		    "FROM pg_catalog.pg_sequence s WHERE s.seqrelid = $1::regclass",
		    2, NULL, params, NULL, NULL, 0);

		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			done++;
		else
		{
			failed++;
			event_say("SequenceSync", "warning", "setval(%s, %s) failed on the target: %s",
			          params[0], params[1], PQerrorMessage(m->tgt));
		}
		PQclear(r);
	}
	PQclear(res);
	event_begin(&e, "SequenceSync");
	event_int(&e, "sequences", done);
	event_int(&e, "failed", failed);
	event_end(&e, "sequences set to the source's values");
}

/*
 * Drop what this run created, best effort with warnings: the slot (after the
 * replication connection is closed), the publication, the progress schema.
 */
static void
mig_cleanup(mig *m, bool drop_slot, bool drop_publication, bool drop_progress)
{
	char err[1024];

	replconn_close(&m->rc);
	if (m->src && m->created_slot && drop_slot)
	{
		const char *params[1] = {m->o.slot};
		bool ok = false;

		/* the walsender may take a moment to let go of the slot */
		for (int i = 0; i < 50 && !ok; i++)
		{
			PGresult *res = PQexecParams(m->src, "SELECT pg_catalog.pg_drop_replication_slot($1)",
			                             1, NULL, params, NULL, NULL, 0);

			ok = PQresultStatus(res) == PGRES_TUPLES_OK;
			if (!ok)
				snprintf(err, sizeof(err), "%s", PQerrorMessage(m->src));
			PQclear(res);
			if (!ok)
				usleep(100 * 1000);
		}
		if (!ok)
			event_say("Complete", "warning", "could not drop the slot \"%s\": %s", m->o.slot, err);
	}
	if (m->src && m->created_publication && drop_publication &&
	    !srcplan_drop_publication(m->src, m->o.publication, err, sizeof(err)))
		event_say("Complete", "warning", "could not drop the publication: %s", err);
	if (m->src && m->created_keyless_publication && drop_publication &&
	    !srcplan_drop_publication(m->src, m->plan.keyless_publication, err, sizeof(err)))
		event_say("Complete", "warning", "could not drop the publication: %s", err);
	if (drop_progress && m->tgt && m->o.online &&
	    !mig_exec(m->tgt, PGDBM_SCHEMA_DROP_SQL, err, sizeof(err)))
		event_say("Complete", "warning", "could not drop " PGDBM_SCHEMA " on the target: %s", err);
}

/* ------------------------------------------------------------------- guard */

/* Before streaming: the guard in force on the target (identity columns always). */
static bool
mig_guard_apply(mig *m, char *errbuf, size_t errlen)
{
	scope_filters f = mig_scope(m);
	char **names, why[2048];
	int n;
	guard_counts c;
	bool ok;
	event e;

	if (!scope_list_tables(m->src, &f, &names, &n, errbuf, errlen))
		return false;
	ok = guard_apply(m->tgt, (const char *const *)names, n, m->guard_full, &c, errbuf, errlen);
	scope_free(names, n);
	if (!ok)
	{
		snprintf(why, sizeof(why), "%s", errbuf);
		snprintf(errbuf, errlen,
		         "could not hold back the target's triggers, foreign keys or identity columns "
		         "for the apply: %s (the target role needs to own the migrated tables: "
		         "--no-owner restores them so)",
		         why);
		return false;
	}
	m->guard_applied = true;
	event_begin(&e, "Guard");
	event_int(&e, "triggers", c.triggers);
	event_int(&e, "foreign_keys", c.foreign_keys);
	event_int(&e, "identities", c.identities);
	event_end(&e, "%s, recorded in " PGDBM_LEDGER " on the target",
	          m->guard_full ? "user triggers disabled, foreign keys dropped and identity columns "
	                          "BY DEFAULT on the target while streaming"
	                        : "identity columns BY DEFAULT and ENABLE ALWAYS/REPLICA triggers "
	                          "disabled on the target while streaming");
	return true;
}

/* At cutover (or to end a run): put back what the ledger records, foreign keys NOT VALID. */
static bool
mig_guard_undo(mig *m, const char *stage, char *errbuf, size_t errlen)
{
	guard_counts c;
	char why[2048];
	event e;
	int64_t t0 = cli_now_ms();

	if (!guard_undo(m->tgt, &c, errbuf, errlen))
	{
		snprintf(why, sizeof(why), "%s", errbuf);
		snprintf(errbuf, errlen,
		         "could not put back what the guard changed on the target: %s; fix the cause "
		         "and run again with --resume (" PGDBM_LEDGER " keeps what is left)",
		         why);
		return false;
	}
	if (c.triggers + c.foreign_keys + c.identities == 0)
		return true;
	event_begin(&e, stage);
	event_int(&e, "triggers", c.triggers);
	event_int(&e, "foreign_keys", c.foreign_keys);
	event_int(&e, "identities", c.identities);
	event_num(&e, "seconds", (double)(cli_now_ms() - t0) / 1000.0);
	event_end(&e, "the target's triggers and identity columns are back as on the source, its "
	              "foreign keys re-added NOT VALID (validated after the cutover)");
	return true;
}

/* After the cutover: validate the re-added foreign keys; the ledger is then empty. */
static bool
mig_guard_validate(mig *m, const char *stage, char *errbuf, size_t errlen)
{
	guard_counts c;
	char why[2048];
	event e;
	int64_t t0 = cli_now_ms();

	if (!guard_validate(m->tgt, &c, errbuf, errlen))
	{
		snprintf(why, sizeof(why), "%s", errbuf);
		snprintf(errbuf, errlen,
		         "could not validate a foreign key the guard re-added on the target: %s; fix the "
		         "cause and run again with --resume",
		         why);
		return false;
	}
	if (c.validated == 0)
		return true;
	event_begin(&e, stage);
	event_int(&e, "validated", c.validated);
	event_num(&e, "seconds", (double)(cli_now_ms() - t0) / 1000.0);
	event_end(&e, "foreign keys validated on the target (as on the source)");
	return true;
}

/* ------------------------------------------------------------------ Verify */

/* What the comparison before Complete found. */
typedef enum mig_verified
{
	MIG_VERIFY_OFF,         /* --verify off */
	MIG_VERIFY_EQUAL,       /* source and target are equal */
	MIG_VERIFY_DIFFERENCES, /* they differ (named in the Verify event) */
	MIG_VERIFY_UNVERIFIED   /* the comparison could not be made */
} mig_verified;

/* The Complete event's "verified" field. */
static const char *
mig_verified_name(mig_verified v)
{
	static const char *const names[] = {"off", "equal", "differences", "unverified"};

	return names[v];
}

/* Compare source and target; the outcome, and unless equal a message in errbuf. */
static mig_verified
mig_verify(mig *m, int *differences, char *errbuf, size_t errlen)
{
	verify_opts vo = {0};
	verify_result r;
	scope_filters f = mig_scope(m);
	event e;
	bool equal;

	vo.source = m->o.source;
	vo.target = m->o.target;
	vo.schemas = f.schemas;
	vo.tables = f.tables;
	vo.exclude_schemas = f.exclude_schemas;
	vo.exclude_tables = f.exclude_tables;
	vo.jobs = m->o.jobs;
	vo.schema_only = strcmp(m->o.scope, "schema-only") == 0;
	*differences = 0;
	event_say("Verify", "info", "%s",
	          vo.schema_only ? "comparing the schema (--dump-scope schema-only: no rows)"
	                         : "comparing every table and sequence in scope");
	if (!verify_run(&vo, &r, errbuf, errlen))
	{
		char why[1024];

		snprintf(why, sizeof(why), "%s", errbuf);
		event_say("Verify", m->o.verify == 2 ? "error" : "warning", "could not verify: %s", why);
		snprintf(errbuf, errlen,
		         "could not compare source and target (%s): check them with pg_dbmigrator verify",
		         why);
		return MIG_VERIFY_UNVERIFIED;
	}
	equal = r.differences == 0;
	*differences = r.differences;
	event_begin(&e, "Verify");
	if (!equal)
		event_level(&e, m->o.verify == 2 ? "error" : "warning");
	event_int(&e, "tables", r.ntables);
	if (r.src_large_objects >= 0)
		event_int(&e, "large_objects", r.src_large_objects);
	event_int(&e, "differences", r.differences);
	event_num(&e, "seconds", r.seconds);
	if (equal)
		event_end(&e, "source and target are equal");
	else
	{
		strbuf names;

		strbuf_init(&names);
		for (int i = 0; i < r.ntables; i++)
			if (!r.tables[i].match &&
			    !strbuf_appendf(&names, "%s%s", strbuf_len(&names) ? ", " : "", r.tables[i].name))
				break;
		event_end(&e, "source and target differ: %s%s%s", strbuf_data(&names),
		          strbuf_len(&names) && r.details && r.details[0] ? "; " : "",
		          r.details ? r.details : "");
		snprintf(errbuf, errlen,
		         "verification found %d difference%s: the target is not an exact copy (see the "
		         "Verify event; pg_dbmigrator verify shows them again)",
		         r.differences, r.differences == 1 ? "" : "s");
		strbuf_free(&names);
	}
	verify_free(&r);
	return equal ? MIG_VERIFY_EQUAL : MIG_VERIFY_DIFFERENCES;
}

/* ------------------------------------------------------------------ resume */

static bool
mig_save_token(mig *m, resume_stage stage, char *errbuf, size_t errlen)
{
	m->token.version = RESUME_VERSION;
	m->token.stage = stage;
	m->token.config_hash = migopts_config_hash(&m->o, m->src_ci.safe, m->tgt_ci.safe);
	m->token.online = m->o.online;
	snprintf(m->token.slot, sizeof(m->token.slot), "%s", m->o.slot);
	snprintf(m->token.publication, sizeof(m->token.publication), "%s", m->o.publication);
	m->token.created_publication = m->created_publication;
	snprintf(m->token.keyless_publication, sizeof(m->token.keyless_publication), "%s",
	         m->plan.keyless_publication);
	m->token.created_keyless_publication = m->created_keyless_publication;
	/* where the slot was created (it names the run): later stages keep it */
	if (stage <= RESUME_SNAPSHOT)
		m->token.consistent_lsn = m->slot.consistent_point;
	snprintf(m->token.source, sizeof(m->token.source), "%s", m->src_ci.safe);
	snprintf(m->token.target, sizeof(m->token.target), "%s", m->tgt_ci.safe);
	m->have_token = true;
	m->wrote_token = true;
	return resume_save(m->token_path, &m->token, errbuf, errlen);
}

/* Before Validate: what a previous run left, and whether we may go on. */
static bool
mig_check_token(mig *m, char *errbuf, size_t errlen)
{
	bool found;

	if (!resume_load(m->token_path, &m->token, &found, errbuf, errlen))
		return false;
	m->have_token = found;
	if (m->o.force_clean)
	{
		struct stat st;

		/* refuse a wrong --dump-path before anything is created */
		return m->o.dump_path == NULL || stat(m->o.dump_path, &st) != 0 ||
		       mig_remove_dump(m->o.dump_path, true, errbuf, errlen);
	}
	if (!found && m->o.resume)
	{
		struct stat st;

		if (m->o.dump_path && stat(m->o.dump_path, &st) == 0)
		{
			snprintf(errbuf, errlen,
			         "--resume: there is no resume token at %s but the dump path exists (use the "
			         "same --dump-path as the interrupted run, or --resume-file; or start over "
			         "with --force-clean)",
			         m->token_path);
			return false;
		}
		/* killed before it had validated anything: nothing was created, so begin */
		event_say("Validate", "warning",
		          "--resume: no resume token at %s: the interrupted run had not started; "
		          "starting from the beginning",
		          m->token_path);
		m->o.resume = false;
		return true;
	}
	if (found && !m->o.resume && m->token.stage == RESUME_COMPLETE)
	{
		snprintf(errbuf, errlen,
		         "a migration with this dump path completed already (%s): use another "
		         "--dump-path, or --force-clean to migrate again",
		         m->token_path);
		return false;
	}
	if (found && !m->o.resume)
	{
		snprintf(errbuf, errlen,
		         "a previous run left %s (after its %s stage): pass --resume to continue it, or "
		         "--force-clean to start over",
		         m->token_path, resume_stage_name(m->token.stage));
		return false;
	}
	if (!found)
		return true;
	if (m->token.config_hash != migopts_config_hash(&m->o, m->src_ci.safe, m->tgt_ci.safe) ||
	    m->token.online != m->o.online)
	{
		snprintf(errbuf, errlen,
		         "cannot resume: the configuration differs from the interrupted run's (mode, "
		         "source, target, slot, publication or filters); run with the same options, or "
		         "start over with --force-clean");
		return false;
	}
	if (m->token.stage < RESUME_DUMPED)
	{
		/* its snapshot died with it: the only way on is from the beginning */
		event_say("Validate", "warning",
		          "--resume: the interrupted run had not finished its dump (the snapshot it "
		          "was taken at is gone): dropping what it left and starting from the beginning");
		m->o.resume = false;
		m->o.force_clean = true;
	}
	return true;
}

/* --force-clean: drop what the previous run left (after Validate connected). */
static void
mig_force_clean(mig *m)
{
	char err[1024], cmd[1200];

	if (m->have_token && m->token.online)
	{
		const char *params[1] = {m->token.slot};
		PGresult *res = PQexecParams(m->src,
		                             "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM "
		                             "pg_catalog.pg_replication_slots WHERE slot_name = $1",
		                             1, NULL, params, NULL, NULL, 0);

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			event_say("Validate", "warning", "--force-clean: could not drop slot %s: %s",
			          m->token.slot, PQerrorMessage(m->src));
		PQclear(res);
		if (m->token.created_publication)
		{
			char *q =
			    PQescapeIdentifier(m->src, m->token.publication, strlen(m->token.publication));

			snprintf(cmd, sizeof(cmd), "DROP PUBLICATION IF EXISTS %s", q ? q : "\"\"");
			PQfreemem(q);
			if (!mig_exec(m->src, cmd, err, sizeof(err)))
				event_say("Validate", "warning", "--force-clean: %s", err);
		}
		if (m->token.created_keyless_publication &&
		    !srcplan_drop_publication(m->src, m->token.keyless_publication, err, sizeof(err)))
			event_say("Validate", "warning", "--force-clean: %s", err);
	}
	if (m->tgt)
	{
		int rows = 0;
		guard_counts u = {0}, v = {0};

		/* the previous run's guard first: its ledger goes with the schema */
		if (!guard_pending(m->tgt, &rows, err, sizeof(err)) ||
		    (rows > 0 && (!guard_undo(m->tgt, &u, err, sizeof(err)) ||
		                  !guard_validate(m->tgt, &v, err, sizeof(err)))))
			event_say("Validate", "warning",
			          "--force-clean: could not undo the guard of the previous run: %s", err);
		else if (rows > 0)
			event_say("Validate", "info",
			          "--force-clean: the guard of the previous run is undone (%d triggers "
			          "enabled, %d identity columns ALWAYS, %d foreign keys re-added, %d "
			          "validated)",
			          u.triggers, u.identities, u.foreign_keys, v.validated);
	}
	if (m->tgt && !mig_exec(m->tgt, PGDBM_SCHEMA_DROP_SQL, err, sizeof(err)))
		event_say("Validate", "warning", "--force-clean: %s", err);
	unlink(m->token_path);
	m->have_token = false;
	memset(&m->token, 0, sizeof(m->token));
}

/* ----------------------------------------------------------------- dry run */

/* Validated already: print the plan, change nothing. */
static int
mig_dry_run(mig *m, char *errbuf, size_t errlen)
{
	scope_filters f = mig_scope(m);
	char **names;
	int n;
	char buf[64], *lit;
	bool pub_exists = false;
	PGresult *res;

	printf("Plan (--dry-run: nothing is changed):\n");
	printf("phases: Validate%s -> Dump -> Restore%s%s -> Complete\n",
	       m->o.online ? " -> PrepareSnapshot" : "",
	       m->o.online ? " -> StreamApply -> (Lag ...) -> CaughtUp -> Cutover on Ctrl+C" : "",
	       m->o.online && m->o.sequence_sync ? " -> SequenceSync" : "");
	if (m->o.verify)
		printf("then: Verify (%s)\n", m->o.verify == 2 ? "strict" : "warn");
	if (m->o.online)
	{
		lit = PQescapeLiteral(m->src, m->o.publication, strlen(m->o.publication));
		if (lit)
		{
			char sql[512];

			snprintf(sql, sizeof(sql),
			         "SELECT count(*) FROM pg_catalog.pg_publication WHERE pubname = %s", lit);
			PQfreemem(lit);
			pub_exists =
			    mig_value(m->src, sql, buf, sizeof(buf), errbuf, errlen) && strcmp(buf, "0") != 0;
		}
		printf("on the source: %s publication %s; create logical slot %s (pgoutput) exporting a "
		       "snapshot\n",
		       pub_exists              ? "use the existing"
		       : m->o.auto_publication ? "create"
		                               : "MISSING",
		       m->o.publication, m->o.slot);
		if (m->plan.nkeyless > 0)
			printf("on the source: create publication %s WITH (publish = 'insert, truncate') "
			       "for the %d table%s without a replica identity (watched for updates and "
			       "deletes)\n",
			       m->plan.keyless_publication, m->plan.nkeyless, m->plan.nkeyless == 1 ? "" : "s");
		for (int i = 0; i < m->plan.ntables; i++)
			if (m->plan.tables[i].set_full)
				printf("on the source: ALTER TABLE %s REPLICA IDENTITY FULL\n",
				       m->plan.tables[i].name);
		printf("at cutover: drop slot %s%s%s; drop " PGDBM_SCHEMA " on the target\n",
		       m->o.keep_slot ? "(no: --keep-slot)" : m->o.slot,
		       pub_exists ? "" : ", drop publication ", pub_exists ? "" : m->o.publication);
	}
	printf("dump (%s):\n", m->o.dump_path);
	if (!mig_dump(m, errbuf, errlen))
		return EXIT_ERROR;
	printf("restore:\n");
	if (!mig_restore(m, errbuf, errlen))
		return EXIT_ERROR;
	if (!scope_list_tables(m->src, &f, &names, &n, errbuf, errlen))
		return EXIT_ERROR;
	printf("tables (%d):\n", n);
	for (int i = 0; i < n; i++)
		printf("  %s\n", names[i]);
	if (m->o.online)
	{
		guard_counts p;

		if (!guard_plan(m->src, (const char *const *)names, n, m->guard_full, &p, errbuf, errlen))
		{
			scope_free(names, n);
			return EXIT_ERROR;
		}
		if (m->guard_full)
			printf("guard on the target (its role may not SET session_replication_role): while "
			       "streaming, disable %d trigger%s, drop %d foreign key%s, set %d identity "
			       "column%s to BY DEFAULT; at cutover put them back (foreign keys NOT VALID, "
			       "validated after the cutover)\n",
			       p.triggers, p.triggers == 1 ? "" : "s", p.foreign_keys,
			       p.foreign_keys == 1 ? "" : "s", p.identities, p.identities == 1 ? "" : "s");
		else
			printf("guard on the target: while streaming, set %d identity column%s to BY "
			       "DEFAULT and disable %d ENABLE ALWAYS/REPLICA trigger%s; put back at "
			       "cutover\n",
			       p.identities, p.identities == 1 ? "" : "s", p.triggers,
			       p.triggers == 1 ? "" : "s");
	}
	scope_free(names, n);
	res = PQexec(m->src, "SELECT format('%I.%I', schemaname, sequencename) FROM "
	                     "pg_catalog.pg_sequences ORDER BY 1");
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		printf("sequences (%d)%s:\n", PQntuples(res),
		       m->o.online && m->o.sequence_sync ? ", set to the source's values at cutover" : "");
		for (int i = 0; i < PQntuples(res); i++)
			printf("  %s\n", PQgetvalue(res, i, 0));
	}
	PQclear(res);
	fflush(stdout);
	return EXIT_OK;
}

/* ------------------------------------------------------------- whole server */

/* Roles and memberships: pg_dumpall --globals-only, applied statement by statement. */
static bool
mig_globals(mig *m, char *errbuf, size_t errlen)
{
	char path[600], dbname[2048], out[1100], me[256];
	const char *argv[8];
	int n = 0, applied = 0, skipped = 0, failed = 0;
	char *text, *line;
	FILE *f;
	size_t len = 0;
	child_spec spec = {0};
	child_result res;

	snprintf(path, sizeof(path), "%s/pg_dumpall", m->bindir);
	snprintf(dbname, sizeof(dbname), "--dbname=%s", m->src_ci.safe);
	snprintf(out, sizeof(out), "%s.globals.sql", m->o.dump_path);
	argv[n++] = path;
	argv[n++] = dbname;
	argv[n++] = "--globals-only";
	argv[n++] = "--no-tablespaces";
	if (!m->o.with_role_passwords)
		argv[n++] = "--no-role-passwords";
	argv[n] = NULL;
	spec.argv = argv;
	spec.password = m->src_ci.password;
	spec.interrupted = &mig_signals;
	spec.stdout_path = out;
	if (!child_run(&spec, &res, errbuf, errlen))
		return false;
	strbuf_free(&res.summary);
	if (res.exit_code != 0)
	{
		snprintf(errbuf, errlen, "pg_dumpall --globals-only exited with %d", res.exit_code);
		return false;
	}
	if (!mig_value(m->tgt, "SELECT current_user", me, sizeof(me), errbuf, errlen))
		return false;
	f = fopen(out, "r");
	if (f == NULL)
	{
		snprintf(errbuf, errlen, "could not read %s", out);
		return false;
	}
	text = NULL;
	{
		char chunk[65536];
		size_t got;

		while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		{
			char *grown = realloc(text, len + got + 1);

			if (grown == NULL)
				break;
			text = grown;
			memcpy(text + len, chunk, got);
			len += got;
			text[len] = '\0';
		}
	}
	fclose(f);
	unlink(out);
	for (line = text; line && *line;)
	{
		char *nl = strchr(line, '\n');
		char quoted[300];

		if (nl)
			*nl = '\0';
		/* the role we connect as is never created, altered or dropped */
		snprintf(quoted, sizeof(quoted), "ROLE %s", me);
		if (line[0] == '\0' || strncmp(line, "--", 2) == 0 || strncmp(line, "SET ", 4) == 0 ||
		    strncmp(line, "\\", 1) == 0)
			;
		else if (strstr(line, quoted) &&
		         (strncmp(line, "CREATE ROLE", 11) == 0 || strncmp(line, "ALTER ROLE", 10) == 0 ||
		          strncmp(line, "DROP ROLE", 9) == 0))
			skipped++;
		else
		{
			PGresult *r = PQexec(m->tgt, line);

			if (PQresultStatus(r) == PGRES_COMMAND_OK)
				applied++;
			else if (strstr(PQresultErrorMessage(r), "already exists") ||
			         strstr(PQresultErrorMessage(r), "is already a member"))
				skipped++;
			else
			{
				failed++;
				event_say("Globals", "warning", "%s: %s", line, PQresultErrorMessage(r));
			}
			PQclear(r);
		}
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	{
		event e;

		event_begin(&e, "Globals");
		event_int(&e, "applied", applied);
		event_int(&e, "skipped", skipped);
		event_int(&e, "failed", failed);
		event_end(&e, "roles and memberships copied%s",
		          m->o.with_role_passwords ? " with their passwords" : " (without passwords)");
	}
	return true;
}

/* A connection string for db, with the password (for a child's environment only). */
static char *
mig_conn_for(const conninfo *ci, const char *db)
{
	strbuf sb;
	char *s = NULL;
	bool ok;

	strbuf_init(&sb);
	ok = strbuf_appendf(&sb, "%s dbname='", ci->safe);
	for (const char *p = db; ok && *p; p++)
		ok = (*p == '\'' || *p == '\\' ? strbuf_append_char(&sb, '\\') : true) &&
		     strbuf_append_char(&sb, *p);
	ok = ok && strbuf_append_char(&sb, '\'');
	if (ok && ci->password)
	{
		ok = strbuf_append_cstr(&sb, " password='");
		for (const char *p = ci->password; ok && *p; p++)
			ok = (*p == '\'' || *p == '\\' ? strbuf_append_char(&sb, '\\') : true) &&
			     strbuf_append_char(&sb, *p);
		ok = ok && strbuf_append_char(&sb, '\'');
	}
	if (ok)
		s = strdup(strbuf_data(&sb));
	strbuf_free(&sb);
	return s;
}

typedef struct mig_child
{
	pid_t pid;
	char db[128];
	int status;
	bool done;
} mig_child;

/* Start one child migration of db (connection strings in its environment, never argv). */
static pid_t
mig_spawn_db(mig *m, int argc, char **argv, const char *db, char *errbuf, size_t errlen)
{
	char *src = mig_conn_for(&m->src_ci, db), *tgt = mig_conn_for(&m->tgt_ci, db);
	migopts_child child;
	pid_t pid;

	if (src == NULL || tgt == NULL)
	{
		free(src);
		free(tgt);
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	migopts_child_init(&child, &m->o, argc, argv, db);
	fflush(NULL);
	pid = fork();
	if (pid == 0)
	{
		/* its own group: a terminal's Ctrl+C reaches the parent only, which forwards it once */
		setpgid(0, 0);
		setenv("PG_DBMIGRATOR_SOURCE", src, 1);
		setenv("PG_DBMIGRATOR_TARGET", tgt, 1);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execv("/proc/self/exe", (char *const *)child.argv);
		fprintf(stderr, "pg_dbmigrator: could not start the migration of %s: %s\n", db,
		        strerror(errno));
		_exit(EXIT_ERROR);
	}
	memset(src, 0, strlen(src));
	memset(tgt, 0, strlen(tgt));
	free(src);
	free(tgt);
	if (pid < 0)
		snprintf(errbuf, errlen, "could not fork: %s", strerror(errno));
	return pid;
}

/* --all-databases: one child migration per database, one cutover for all. */
static int
mig_run_all(mig *m, int argc, char **argv, char *errbuf, size_t errlen)
{
	PGresult *res;
	mig_child kids[256];
	int nkids = 0, running = 0, next = 0, rc = EXIT_OK, forwarded = 0;
	int64_t t0 = cli_now_ms();

	if ((m->src = mig_connect(m->o.source, "source", errbuf, errlen)) == NULL)
	{
		mig_check_failed("source_reachable", "%s", errbuf);
		return EXIT_ERROR;
	}
	if ((m->tgt = mig_connect(m->o.target, "target", errbuf, errlen)) == NULL)
	{
		mig_check_failed("target_reachable", "%s", errbuf);
		return EXIT_ERROR;
	}
	res = PQexec(m->src, m->o.include_postgres
	                         ? "SELECT datname FROM pg_catalog.pg_database WHERE NOT datistemplate "
	                           "AND datallowconn ORDER BY 1"
	                         : "SELECT datname FROM pg_catalog.pg_database WHERE NOT datistemplate "
	                           "AND datallowconn AND datname <> 'postgres' ORDER BY 1");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		snprintf(errbuf, errlen, "could not list the source's databases: %s",
		         PQerrorMessage(m->src));
		PQclear(res);
		return EXIT_ERROR;
	}
	for (int i = 0; i < PQntuples(res) && nkids < 256; i++)
	{
		memset(&kids[nkids], 0, sizeof(kids[nkids]));
		snprintf(kids[nkids++].db, sizeof(kids[0].db), "%s", PQgetvalue(res, i, 0));
	}
	PQclear(res);
	{
		event e;

		event_begin(&e, "Validate");
		event_int(&e, "databases", nkids);
		event_end(&e, "whole-server %s migration of %d database%s",
		          m->o.online ? "online" : "offline", nkids, nkids == 1 ? "" : "s");
	}
	if (m->o.dry_run)
	{
		for (int i = 0; i < nkids; i++)
			printf("database %s\n", kids[i].db);
		return EXIT_OK;
	}
	if (m->o.migrate_globals != 0 && !mig_globals(m, errbuf, errlen))
		return EXIT_ERROR;
	mkdir(m->o.dump_path, 0700);
	/* databases the target lacks */
	for (int i = 0; i < nkids; i++)
	{
		const char *params[1] = {kids[i].db};
		PGresult *r =
		    PQexecParams(m->tgt, "SELECT count(*) FROM pg_catalog.pg_database WHERE datname = $1",
		                 1, NULL, params, NULL, NULL, 0);
		bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "1") == 0;

		PQclear(r);
		if (!exists)
		{
			char *q = PQescapeIdentifier(m->tgt, kids[i].db, strlen(kids[i].db));
			char sql[400];

			snprintf(sql, sizeof(sql), "CREATE DATABASE %s", q ? q : "\"\"");
			PQfreemem(q);
			if (!mig_exec(m->tgt, sql, errbuf, errlen))
				return EXIT_ERROR;
			event_say("Validate", "info", "created database %s on the target", kids[i].db);
		}
	}
	/* online: every database streams at once (one cutover); offline: --max-parallel at a time */
	while (next < nkids || running > 0)
	{
		int status;
		pid_t pid;

		while (next < nkids && (m->o.online || running < m->o.max_parallel) && !mig_signals)
		{
			kids[next].pid = mig_spawn_db(m, argc, argv, kids[next].db, errbuf, errlen);
			if (kids[next].pid < 0)
				return EXIT_ERROR;
			running++;
			next++;
		}
		if (mig_signals > forwarded)
		{
			/* Ctrl+C: every database cuts over (a second one: every database aborts) */
			for (int i = 0; i < next; i++)
				if (!kids[i].done)
					kill(kids[i].pid, SIGINT);
			forwarded = mig_signals;
		}
		pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
		{
			usleep(100 * 1000);
			if (next == nkids || !mig_signals)
				continue;
			break; /* interrupted before every database started */
		}
		for (int i = 0; i < next; i++)
			if (kids[i].pid == pid)
			{
				int code = WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_ERROR;

				kids[i].done = true;
				kids[i].status = code;
				running--;
				/* the worst wins: failed, then aborted, then done with differences */
				if (code == EXIT_DIFFERS && rc == EXIT_OK)
					rc = EXIT_DIFFERS;
				else if (code == EXIT_ABORTED && (rc == EXIT_OK || rc == EXIT_DIFFERS))
					rc = EXIT_ABORTED;
				else if (code != EXIT_OK && code != EXIT_ABORTED && code != EXIT_DIFFERS)
					rc = EXIT_ERROR;
				event_say("Complete",
				          code == EXIT_OK        ? "info"
				          : code == EXIT_DIFFERS ? "warning"
				                                 : "error",
				          "database %s: %s", kids[i].db,
				          code == EXIT_OK        ? "done"
				          : code == EXIT_DIFFERS ? "done, but verification found differences"
				          : code == EXIT_ABORTED ? "aborted"
				                                 : "failed");
			}
	}
	if (rc == EXIT_OK || rc == EXIT_DIFFERS)
	{
		event e;

		event_begin(&e, "Complete");
		if (rc == EXIT_DIFFERS)
			event_level(&e, "warning");
		if (rc == EXIT_DIFFERS)
			event_str(&e, "verified", "differences");
		event_int(&e, "databases", nkids);
		event_num(&e, "seconds", (double)(cli_now_ms() - t0) / 1000.0);
		event_end(&e, "whole-server migration complete%s",
		          rc == EXIT_OK ? "" : ", but verification found differences (see above)");
	}
	else
		snprintf(errbuf, errlen, "not every database migrated (see above)");
	return rc;
}

/* ------------------------------------------------------------------ command */

int
cmd_migrate(int argc, char **argv)
{
	mig m;
	bool help;
	char err[4096] = "";
	int rc = EXIT_ERROR;
	struct sigaction sa;
	int64_t t0 = cli_now_ms();
	const char *bindir = getenv("PG_BINDIR");
	mig_verified verified = MIG_VERIFY_OFF;
	int differences = 0;
	bool verify_failed = false;

	memset(&m, 0, sizeof(m));
	if (!migopts_parse(argc, argv, &m.o, &help, err, sizeof(err)))
	{
		fprintf(stderr, "pg_dbmigrator: %s\n", err);
		return EXIT_USAGE;
	}
	if (help)
	{
		migopts_usage(stdout);
		return EXIT_OK;
	}
	if (!conninfo_parse(m.o.source, &m.src_ci, err, sizeof(err)))
	{
		fprintf(stderr, "pg_dbmigrator: --source: %s\n", err);
		return EXIT_USAGE;
	}
	if (!conninfo_parse(m.o.target, &m.tgt_ci, err, sizeof(err)))
	{
		fprintf(stderr, "pg_dbmigrator: --target: %s\n", err);
		conninfo_free(&m.src_ci);
		return EXIT_USAGE;
	}
	err[0] = '\0';
	snprintf(m.bindir, sizeof(m.bindir), "%s", bindir && bindir[0] ? bindir : PG_BINDIR);
	events_init(m.o.json);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mig_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (m.o.event_tag)
		events_set_tag(m.o.event_tag);
	if (m.o.all_databases)
	{
		rc = mig_run_all(&m, argc, argv, err, sizeof(err));
		goto done;
	}
	if (m.o.resume_file)
		snprintf(m.token_path, sizeof(m.token_path), "%s", m.o.resume_file);
	else
		resume_path(m.o.dump_path, m.token_path, sizeof(m.token_path));
	if (!mig_check_token(&m, err, sizeof(err)))
		goto done;
	if (m.o.resume && m.token.stage == RESUME_COMPLETE)
	{
		event_say("Complete", "info", "the interrupted run had completed: nothing to resume");
		rc = EXIT_OK;
		goto done;
	}
	if (!mig_validate(&m, err, sizeof(err)))
		goto done;
	if (m.o.dry_run)
	{
		rc = mig_dry_run(&m, err, sizeof(err));
		goto done;
	}
	/* a crashed --fast-restore-settings run left the target fast and unsafe: fix that first */
	if (!mig_restore_settings(&m, err, sizeof(err)))
		goto done;
	if (m.o.force_clean)
		mig_force_clean(&m);
	if (m.o.resume && m.token.stage == RESUME_CUTOVER)
	{
		/* cut over already: only the finishing steps are left */
		if (m.o.online && !mig_reattach_after_cutover(&m, err, sizeof(err)))
			goto done;
	}
	else if (m.o.resume)
	{
		if (m.o.online && !mig_reattach(&m, err, sizeof(err)))
			goto done;
	}
	else
	{
		/* from here on a kill leaves a token naming what to clean up */
		if (!mig_save_token(&m, RESUME_STARTED, err, sizeof(err)))
			goto done;
		if (m.o.online && !mig_prepare_snapshot(&m, err, sizeof(err)))
			goto done;
		if (!mig_save_token(&m, RESUME_SNAPSHOT, err, sizeof(err)))
			goto done;
		if (!mig_dump(&m, err, sizeof(err)))
		{
			if (mig_signals)
				rc = EXIT_ABORTED;
			goto done;
		}
		if (!mig_save_token(&m, RESUME_DUMPED, err, sizeof(err)))
			goto done;
	}
	if (m.o.resume && m.token.stage == RESUME_CUTOVER)
		event_say("Restore", "info", "resuming: the interrupted run had cut over already");
	else if (!m.o.resume || m.token.stage < RESUME_RESTORED)
	{
		if (!mig_restore(&m, err, sizeof(err)))
		{
			if (mig_signals)
				rc = EXIT_ABORTED;
			goto done;
		}
		if (!mig_save_token(&m, RESUME_RESTORED, err, sizeof(err)))
			goto done;
	}
	else
		event_say("Restore", "info", "resuming: dump and restore were done by the interrupted run");
	if (m.o.online)
	{
		if (!m.o.resume || m.token.stage < RESUME_CUTOVER)
		{
			if (!mig_guard_apply(&m, err, sizeof(err)))
				goto done;
			rc = mig_stream(&m, err, sizeof(err));
			/* either server may have restarted while streaming */
			pgsession_refresh(m.src, PGSESSION_SOURCE);
			pgsession_refresh(m.tgt, PGSESSION_TARGET);
			if (rc != EXIT_OK)
				goto done;
			rc = EXIT_ERROR;
			/* every change is on the target: a kill from here on only needs the finishing */
			if (!mig_save_token(&m, RESUME_CUTOVER, err, sizeof(err)))
				goto done;
		}
		/* the target's triggers and identity columns back, foreign keys NOT VALID */
		if (!mig_guard_undo(&m, "Guard", err, sizeof(err)))
			goto done;
		if (m.o.sequence_sync)
			mig_sequence_sync(&m);
	}
	mig_cleanup(&m, !m.o.keep_slot, true, false);
	/* validated while the application may write already; before the ledger goes */
	if (m.o.online && !mig_guard_validate(&m, "Guard", err, sizeof(err)))
		goto done;
	mig_cleanup(&m, false, false, true);
	verified = m.o.verify ? mig_verify(&m, &differences, err, sizeof(err)) : MIG_VERIFY_OFF;
	if (m.o.verify == 2 && verified != MIG_VERIFY_EQUAL)
	{
		/* --verify strict: not Complete; a --resume verifies again */
		verify_failed = true;
		rc = EXIT_ERROR;
		goto done;
	}
	if (!m.o.dry_run && !mig_save_token(&m, RESUME_COMPLETE, err, sizeof(err)))
		goto done;
	{
		event e;
		bool clean = verified == MIG_VERIFY_EQUAL || verified == MIG_VERIFY_OFF;

		/* done and cut over; a target known (or not known) to differ is not a clean success */
		event_begin(&e, "Complete");
		if (!clean)
			event_level(&e, "warning");
		event_str(&e, "verified", mig_verified_name(verified));
		if (verified == MIG_VERIFY_DIFFERENCES)
			event_int(&e, "differences", differences);
		event_num(&e, "seconds", (double)(cli_now_ms() - t0) / 1000.0);
		if (clean)
			event_end(&e, "%s migration complete", m.o.online ? "online" : "offline");
		else
			event_end(&e, "%s migration complete, but %s (exit %d)",
			          m.o.online ? "online" : "offline", err, EXIT_DIFFERS);
		rc = clean ? EXIT_OK : EXIT_DIFFERS;
	}
done:
	if (rc != EXIT_OK && rc != EXIT_DIFFERS)
	{
		if (err[0])
			event_say(rc == EXIT_ABORTED ? "Aborted" : "Error", "error", "%s", err);
		if (m.restart || m.slot_gone)
		{
			char gerr[2048];

			/* this migration cannot go on: the target's triggers and keys come back */
			if (m.tgt && (!mig_guard_undo(&m, "Error", gerr, sizeof(gerr)) ||
			              !mig_guard_validate(&m, "Error", gerr, sizeof(gerr))))
				event_say("Error", "warning", "%s", gerr);
			if (m.restart)
			{
				/* the stream lacks a change: resuming cannot help, so nothing is kept */
				mig_cleanup(&m, true, true, false);
				event_say("Error", "info",
				          "nothing was cut over; the slot and publications are dropped and the "
				          "target holds a partial copy: start over with --force-clean "
				          "--drop-target-first");
			}
			else
				event_say("Error", "info",
				          "nothing was cut over; the target holds a partial copy: start over "
				          "with --force-clean --drop-target-first");
		}
		else if (verify_failed)
			event_say("Error", "info",
			          "the migration is done%s, but the target is not known to equal the source "
			          "(--verify strict): fix the target, then run again with --resume to "
			          "verify and complete",
			          m.o.online ? " and cut over" : "");
		else if (rc == EXIT_ERROR && m.have_token && m.token.stage >= RESUME_DUMPED)
			event_say("Error", "info",
			          m.o.online ? "the slot and the dump are kept: fix the cause and run again "
			                       "with --resume, or start over with --force-clean"
			                     : "the dump is kept: fix the cause and run again with --resume "
			                       "(the restore starts again from the dump), or start over with "
			                       "--force-clean");
		else if (rc == EXIT_ERROR && m.wrote_token)
		{
			/* nothing to resume from: leave no slot holding WAL; --resume starts over */
			mig_cleanup(&m, true, true, false);
			event_say("Error", "info",
			          "nothing could be kept (the dump had not finished): fix the cause and run "
			          "again with --resume to start over, or with --force-clean");
		}
		else if (rc == EXIT_ERROR && (m.created_slot || m.created_publication))
			mig_cleanup(&m, true, true, false);
		else if (rc == EXIT_ABORTED && m.have_token && m.token.stage < RESUME_DUMPED)
		{
			/* aborted before the dump finished: its snapshot is gone, nothing to resume */
			mig_cleanup(&m, true, true, false);
			unlink(m.token_path);
		}
		if (!m.slot_gone && m.guard_applied && m.tgt)
		{
			int rows = 0;
			char gerr[512];

			if (guard_pending(m.tgt, &rows, gerr, sizeof(gerr)) && rows > 0)
				event_say(
				    rc == EXIT_ABORTED ? "Aborted" : "Error", "info",
				    "the guard stays in force on the target (%d changes recorded in " PGDBM_LEDGER
				    ": triggers disabled, foreign keys dropped, "
				    "identity columns BY DEFAULT), as the resume needs it: --resume finishes "
				    "the migration and puts them back; --force-clean puts them back too",
				    rows);
		}
	}
	replconn_close(&m.rc);
	srcplan_free(&m.plan);
	PQfinish(m.src);
	PQfinish(m.tgt);
	conninfo_free(&m.src_ci);
	conninfo_free(&m.tgt_ci);
	return rc;
}
