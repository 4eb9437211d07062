/*
 * finish.c — the end of a run: dropping what it created (slot,
 * publications, the tool's schema) and the verification before Complete.
 *
 * Owns: nothing. Never: drops what an earlier run or the operator created.
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
#include "migrate_internal.h"

/*
 * Drop what this run created, best effort with warnings: the slot (after the
 * replication connection is closed), the publication, the progress schema.
 */
void
finish_cleanup(mig *m, bool drop_slot, bool drop_publication, bool drop_progress)
{
	char err[1024];

	replconn_close(&m->rc);
	/* the DDL capture lives as long as the slot whose stream carries its messages */
	if (m->src && m->o.online && drop_slot)
		snapshot_ddl_remove(m, "Cleanup"); /* not "Complete": that stage means the run is done */
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

/* The Complete event's "verified" field. */
const char *
finish_verified_name(mig_verified v)
{
	static const char *const names[] = {"off", "equal", "differences", "unverified"};

	return names[v];
}

/* Compare source and target; the outcome, and unless equal a message in errbuf. */
mig_verified
finish_verify(mig *m, int *differences, char *errbuf, size_t errlen)
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
	/* after a direct copy, as many readers as its workers (--jobs when given) */
	vo.jobs = m->o.copy_direct ? migopts_copy_jobs(&m->o) : m->o.jobs;
	vo.schema_only = strcmp(m->o.scope, "schema-only") == 0;
	/* after a direct copy in this run: the source's side as the copy digested it */
	vo.copied = m->copied;
	vo.ncopied = m->ncopied;
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
	if (r.one_sided > 0)
		event_int(&e, "read_on_target_only", r.one_sided);
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
