/*
 * runtoken.c — the run's resume token: saved at each stage, checked before
 * Validate (may we go on, resume, or must we start over), and --force-clean
 * of what a previous run left.
 *
 * Owns: the token file at m->token_path. Never: removes a dump directory
 * that does not look like one.
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
#include "migplan.h"
#include "migrate_internal.h"

bool
runtoken_save(mig *m, resume_stage stage, char *errbuf, size_t errlen)
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

/* Before Validate: what a previous run left, and whether we may go on (migplan_check_token). */
bool
runtoken_check(mig *m, char *errbuf, size_t errlen)
{
	migplan_token_input in = {.resume = m->o.resume, .force_clean = m->o.force_clean};
	struct stat st;

	if (!resume_load(m->token_path, &m->token, &in.found, errbuf, errlen))
		return false;
	m->have_token = in.found;
	in.token_stage = m->token.stage;
	in.same_config =
	    m->token.config_hash == migopts_config_hash(&m->o, m->src_ci.safe, m->tgt_ci.safe) &&
	    m->token.online == m->o.online;
	in.dump_exists = m->o.dump_path && stat(m->o.dump_path, &st) == 0;
	switch (migplan_check_token(&in))
	{
		case MIGPLAN_TOKEN_GO:
			return true;
		case MIGPLAN_TOKEN_CLEAN:
			/* refuse a wrong --dump-path before anything is created */
			return !in.dump_exists || dumprun_remove_dump(m->o.dump_path, true, errbuf, errlen);
		case MIGPLAN_TOKEN_BEGIN:
			event_say("Validate", "warning",
			          "--resume: no resume token at %s: the interrupted run had not started; "
			          "starting from the beginning",
			          m->token_path);
			m->o.resume = false;
			return true;
		case MIGPLAN_TOKEN_START_OVER:
			event_say("Validate", "warning",
			          "--resume: the interrupted run had not finished its dump (the snapshot it "
			          "was taken at is gone): dropping what it left and starting from the "
			          "beginning");
			m->o.resume = false;
			m->o.force_clean = true;
			/* a direct copy may have put rows on the target: its tables are dropped first */
			m->clean_target = m->o.copy_direct;
			return true;
		case MIGPLAN_TOKEN_DUMP_EXISTS:
			snprintf(errbuf, errlen,
			         "--resume: there is no resume token at %s but the dump path exists (use the "
			         "same --dump-path as the interrupted run, or --resume-file; or start over "
			         "with --force-clean)",
			         m->token_path);
			return false;
		case MIGPLAN_TOKEN_COMPLETED:
			snprintf(errbuf, errlen,
			         "a migration with this dump path completed already (%s): use another "
			         "--dump-path, or --force-clean to migrate again",
			         m->token_path);
			return false;
		case MIGPLAN_TOKEN_LEFT:
			snprintf(errbuf, errlen,
			         "a previous run left %s (after its %s stage): pass --resume to continue it, "
			         "or --force-clean to start over",
			         m->token_path, resume_stage_name(m->token.stage));
			return false;
		case MIGPLAN_TOKEN_DIFFERS:
			snprintf(errbuf, errlen,
			         "cannot resume: the configuration differs from the interrupted run's (mode, "
			         "source, target, slot, publication or filters); run with the same options, "
			         "or start over with --force-clean");
			return false;
	}
	snprintf(errbuf, errlen, "internal error: an unknown verdict on the resume token");
	return false;
}

/* --force-clean: drop what the previous run left (after Validate connected). */
void
runtoken_force_clean(mig *m)
{
	char err[1024], cmd[1200];

	/* the DDL capture of an earlier online run (ddl.h), with or without its token */
	snapshot_ddl_remove(m, "Validate");
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
