/*
 * preflight.c — the Validate phase: client tools, both connections, the
 * target and source checks, the source plan (srcplan), the target role,
 * owners and grantees.
 *
 * Owns: the run's regular connections once opened (m->src, m->tgt; closed
 * by the runner). Never: creates anything on either server.
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

#include "cmd.h"
#include "ddl.h"
#include "migrate_internal.h"

/* A client tool's path, checked to exist. */
static bool
preflight_tool(mig *m, const char *name, char *path, size_t size)
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
preflight_tool_major(const char *path)
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
 * write no WAL: their changes after the snapshot never reach the target
 * (a warning, with the way out). Logical decoding does not decode large
 * objects either: the LargeObjects phase carries them at the cutover (an
 * info). Said once, up front; the verification compares both.
 */
static void
preflight_warn_unstreamed(mig *m)
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
		event_int(&e, "large_objects", count);
		if (m->o.skip_large_objects)
		{
			event_level(&e, "warning");
			event_end(&e,
			          "%lld large object%s copied by the dump, but with --large-objects skip "
			          "their changes after the snapshot are lost (logical decoding does not "
			          "carry them): stop changing them before the migration, or leave out "
			          "--large-objects skip; the verification compares them",
			          count, count == 1 ? "" : "s");
			return;
		}
		event_end(&e,
		          "%lld large object%s copied by the dump; logical decoding does not carry "
		          "large objects, so those created, changed or unlinked later are carried over "
		          "at the cutover (phase LargeObjects, once writes have stopped: only what "
		          "differs is copied); the verification compares them",
		          count, count == 1 ? "" : "s");
	}
}

/* Warn when the source would take this migration's walsender for a synchronous standby. */
static void
preflight_check_sync_standby(mig *m)
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
	if (!srcplan_sync_standby_matches(ssn, app))
		return;
	/* the source's commits would wait for the next synchronous commit on the target */
	if (m->o.synchronous_commit == -1)
		m->o.synchronous_commit = 1;
	/* and must not wait for a catch-up without a walsender: stream from the start */
	m->o.catch_up_stream = true;
	event_say("Validate", "warning",
	          "the source's synchronous_standby_names = '%s' matches this migration's "
	          "walsender (application_name %s): while it streams it may be the synchronous "
	          "standby, so the source's commits wait for the target's apply (%s); to keep them "
	          "off it, set application_name in --source to a name not listed there",
	          ssn, app,
	          m->o.synchronous_commit == 1
	              ? "each target commit waits for the target's disk and is reported at once"
	              : "--synchronous-commit off: a target commit is reported once the target has "
	                "flushed it, within 0.2 s");
}

/*
 * Online: what the run asks of the source, decided before anything is
 * created there (srcplan): publications, keyless tables, the operator's
 * publication checked.
 */
static bool
preflight_source(mig *m, char *errbuf, size_t errlen)
{
	scope_filters f = mig_scope(m);
	char **names, *list;
	int n;
	const char *check = "source_tables";
	bool ok;

	preflight_check_sync_standby(m);
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
	if (m->plan.all_tables && !m->ddl)
		event_say("Validate", "warning",
		          "the publication will be FOR ALL TABLES and the DDL capture is not installed "
		          "(--ddl stop): a table the application creates without a primary key during the "
		          "migration, or whose primary key it drops, is published at once, and the source "
		          "then REFUSES the application's UPDATE and DELETE on it (\"does not have a "
		          "replica identity and publishes updates\") until it has a key or REPLICA "
		          "IDENTITY FULL; `pg_dbmigrator status` names such tables. Give new tables a "
		          "primary key, or run with --ddl replicate (a superuser source role), whose "
		          "capture sets REPLICA IDENTITY FULL on them in the same transaction");
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
preflight_target_role(mig *m, char *errbuf, size_t errlen)
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
preflight_grantees(mig *m, char *errbuf, size_t errlen)
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

/*
 * --ddl: replicate when asked or, when not said, when the source role may
 * create the capture's event triggers (a superuser on PostgreSQL up to 16),
 * with the reason said when it falls back to stop; asked for and not
 * allowed, the check fails.
 */
static bool
preflight_ddl(mig *m)
{
	PGresult *res;
	bool allowed;

	m->ddl = false;
	m->ddl_why[0] = '\0';
	if (!m->o.online || m->o.ddl == 0)
		return true;
	res = PQexec(m->src, ddl_allowed_sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		snprintf(m->ddl_why, sizeof(m->ddl_why), "could not ask the source: %s",
		         PQerrorMessage(m->src));
	else
		snprintf(m->ddl_why, sizeof(m->ddl_why), "%s", PQgetvalue(res, 0, 1));
	allowed = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	          strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (allowed)
	{
		char other[256];

		/* the capture's names are fixed: one migration of a database may have it */
		if (!snapshot_ddl_ours(m, other, sizeof(other)))
		{
			allowed = false;
			snprintf(m->ddl_why, sizeof(m->ddl_why),
			         "the source database already has the DDL capture of another migration "
			         "(\"%s\"), and two migrations of one database cannot both capture DDL "
			         "(the first to end would drop it). Run this one after that one ends, or "
			         "with --ddl stop",
			         other);
		}
	}
	if (allowed)
	{
		m->ddl = true;
		return true;
	}
	for (size_t n = strlen(m->ddl_why); n > 0 && m->ddl_why[n - 1] == '\n'; n--)
		m->ddl_why[n - 1] = '\0';
	if (m->o.ddl == 1)
		return mig_check_failed("source_ddl_capture",
		                        strstr(m->ddl_why, "another migration")
		                            ? "--ddl replicate: %s"
		                            : "--ddl replicate: %s; use a superuser source role, or --ddl "
		                              "stop",
		                        m->ddl_why);
	event_say("Validate", "warning",
	          "--ddl stop: schema changes on the source will not be replayed (%s); a changed table "
	          "stops the apply, to be fixed by hand on the target and resumed",
	          m->ddl_why);
	return true;
}

bool
preflight_run(mig *m, char *errbuf, size_t errlen)
{
	char buf[256], path[600];
	int major;
	event e;

	if (!preflight_tool(m, "pg_dump", path, sizeof(path)))
		return false;
	major = preflight_tool_major(path);
	if (!migopts_compress_check(&m->o, major, buf, sizeof(buf)))
		return mig_check_failed("client_tools", "%s", buf);
	if (!preflight_tool(m, "pg_restore", path, sizeof(path)))
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
	if (!preflight_ddl(m))
		return false;
	if (!m->o.drop_target_first && !m->clean_target && !m->o.resume &&
	    strcmp(m->o.scope, "data-only") != 0)
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
	if (m->o.online && !preflight_source(m, errbuf, errlen))
		return false;
	if (m->o.online)
		preflight_warn_unstreamed(m);
	if (!preflight_target_role(m, errbuf, errlen) || !preflight_grantees(m, errbuf, errlen))
		return false;
	event_begin(&e, "Validate");
	event_str(&e, "mode", m->o.online ? "online" : "offline");
	if (m->o.online)
		event_str(&e, "ddl", m->ddl ? "replicate" : "stop");
	event_int(&e, "tables", m->ntables);
	event_str(&e, "source", m->src_ci.safe);
	event_str(&e, "target", m->tgt_ci.safe);
	event_end(&e, "checks passed");
	return true;
}
