/*
 * snapshot.c — the PrepareSnapshot phase and its resume counterparts:
 * REPLICA IDENTITY FULL with consent, the publications, the slot with an
 * exported snapshot; or re-attaching to an interrupted run's slot.
 *
 * Owns: the replication connection m->rc while the dump needs its snapshot.
 * Never: drops what it created (finish.c and the runner do).
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

/* Run sql on the source in one transaction; false with the server's message in errbuf. */
static bool
snapshot_ddl_exec(PGconn *src, const char *sql, char *errbuf, size_t errlen)
{
	PGresult *res = PQexec(src, "BEGIN");
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	PQclear(res);
	if (ok)
	{
		res = PQexec(src, sql);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
		if (!ok)
			snprintf(errbuf, errlen, "%s", PQerrorMessage(src));
		PQclear(res);
		res = PQexec(src, ok ? "COMMIT" : "ROLLBACK");
		if (ok && PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			snprintf(errbuf, errlen, "%s", PQerrorMessage(src));
			ok = false;
		}
		PQclear(res);
	}
	else
		snprintf(errbuf, errlen, "%s", PQerrorMessage(src));
	for (size_t n = strlen(errbuf); !ok && n > 0 && errbuf[n - 1] == '\n'; n--)
		errbuf[n - 1] = '\0';
	return ok;
}

/* Is the DDL capture installed on the source? */
static bool
snapshot_ddl_present(mig *m)
{
	char buf[32], err[512];

	return m->src && mig_value(m->src, ddl_present_sql, buf, sizeof(buf), err, sizeof(err)) &&
	       atoi(buf) > 0;
}

bool
snapshot_ddl_ours(mig *m, char *other, size_t otherlen)
{
	PGresult *res;
	bool ours = true;

	other[0] = '\0';
	if (m->src == NULL)
		return true;
	res = PQexec(m->src, ddl_owner_sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
	{
		const char *c = PQgetvalue(res, 0, 0);

		const char *slot = strncmp(c, DDL_OWNER_PREFIX, strlen(DDL_OWNER_PREFIX)) == 0
		                       ? c + strlen(DDL_OWNER_PREFIX)
		                       : NULL;

		/* this run's slot, or the one of the run this --dump-path's token is of */
		ours = c[0] == '\0' ||
		       (slot && (strcmp(slot, m->o.slot) == 0 ||
		                 (m->have_token && m->token.online && strcmp(slot, m->token.slot) == 0)));
		if (!ours)
			snprintf(other, otherlen, "%s", c);
	}
	PQclear(res);
	return ours;
}

void
snapshot_ddl_remove(mig *m, const char *phase)
{
	char err[1024];

	if (m->src == NULL || !snapshot_ddl_present(m))
		return;
	if (!snapshot_ddl_ours(m, err, sizeof(err)))
	{
		event_say(phase, "info",
		          "the DDL capture on the source is another migration's (%s): left in place", err);
		return;
	}
	if (!snapshot_ddl_exec(m->src, ddl_remove_sql, err, sizeof(err)))
		event_say(phase, "warning",
		          "could not drop the DDL capture (event triggers " DDL_TRIGGER_END
		          ", " DDL_TRIGGER_DROP ", " DDL_TRIGGER_REWRITE
		          ") on the source: %s; drop them by hand",
		          err);
	else
		event_say(phase, "info", "the DDL capture (event triggers) is dropped from the source");
}

/*
 * Our list publication (made for --schema, --table or --exclude-..., or
 * beside the insert-only one of keyless tables): a table created in scope
 * during the migration joins it in the same transaction (ddl.h's publish
 * hook). Without it, its rows would never be streamed; a warning says so
 * when the hook cannot be made.
 */
static void
snapshot_ddl_publish_hook(mig *m)
{
	scope_filters f = mig_scope(m);
	char *lpub, err[1024];
	strbuf sql, cond;
	bool ok;

	if (!m->created_publication || m->plan.all_tables)
		return;
	lpub = PQescapeLiteral(m->src, m->plan.publication, strlen(m->plan.publication));
	strbuf_init(&sql);
	strbuf_init(&cond);
	ok = lpub != NULL && scope_predicate(m->src, &f, "s.nspname", "c.relname", &cond) &&
	     ddl_publish_hook_sql(&sql, lpub, strbuf_data(&cond));
	if (!ok)
		snprintf(err, sizeof(err), "out of memory");
	else
		ok = snapshot_ddl_exec(m->src, strbuf_data(&sql), err, sizeof(err));
	if (!ok)
		event_say("PrepareSnapshot", "warning",
		          "tables created on the source during the migration will not join the "
		          "publication %s (%s): their rows are not streamed, and verify will say so",
		          m->plan.publication, err);
	strbuf_free(&sql);
	strbuf_free(&cond);
	PQfreemem(lpub);
}

/*
 * Install the DDL capture before the slot exists, so that no command falls
 * between the snapshot and the capture. A failure stops the run when
 * --ddl replicate was asked for; else the run goes on with --ddl stop.
 */
static bool
snapshot_ddl_install(mig *m, char *errbuf, size_t errlen)
{
	char err[1024], *lowner;
	strbuf sql;
	bool ok;

	if (!m->ddl)
		return true;
	/* the schema's comment names this run's slot: no other run drops it */
	snprintf(err, sizeof(err), DDL_OWNER_PREFIX "%s", m->o.slot);
	lowner = PQescapeLiteral(m->src, err, strlen(err));
	strbuf_init(&sql);
	ok = lowner && strbuf_appendf(&sql, "%sCOMMENT ON SCHEMA " DDL_SCHEMA " IS %s;\n",
	                              ddl_install_sql, lowner);
	PQfreemem(lowner);
	if (!ok)
		snprintf(err, sizeof(err), "out of memory");
	else
		ok = snapshot_ddl_exec(m->src, strbuf_data(&sql), err, sizeof(err));
	strbuf_free(&sql);
	if (ok)
	{
		snapshot_ddl_publish_hook(m);
		event_say("PrepareSnapshot", "info",
		          "DDL capture installed on the source (event triggers " DDL_TRIGGER_END
		          ", " DDL_TRIGGER_DROP ", " DDL_TRIGGER_REWRITE
		          "): schema changes are replayed in stream order");
		return true;
	}
	m->ddl = false;
	if (m->o.ddl == 1)
	{
		snprintf(errbuf, errlen,
		         "--ddl replicate: could not install the DDL capture on the source: %s", err);
		return false;
	}
	event_say("PrepareSnapshot", "warning",
	          "--ddl stop: could not install the DDL capture on the source (%s); a table changed "
	          "on the source stops the apply",
	          err);
	return true;
}

/*
 * Resume after the cutover: the target has every change; the slot (if the
 * interrupted run had not dropped it yet) and the publication are dropped at
 * the end as usual.
 */
bool
snapshot_reattach_after_cutover(mig *m, char *errbuf, size_t errlen)
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
bool
snapshot_reattach(mig *m, char *errbuf, size_t errlen)
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
	/* the interrupted run's capture, if it had one, goes on; none is added now */
	m->ddl = snapshot_ddl_present(m);
	event_say("PrepareSnapshot", "info", "resuming: slot %s found (confirmed up to %s)",
	          m->slot.name, pgo_lsn_format(m->slot.consistent_point, lsn));
	return true;
}

bool
snapshot_prepare(mig *m, char *errbuf, size_t errlen)
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
	if ((created_main || created_keyless) && !runtoken_save(m, RESUME_STARTED, errbuf, errlen))
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
	if (!snapshot_ddl_install(m, errbuf, errlen))
		return false;
	if (!replconn_create_slot(&m->rc, m->o.slot, false, &m->slot, errbuf, errlen))
	{
		snapshot_ddl_remove(m, "PrepareSnapshot");
		return false;
	}
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
