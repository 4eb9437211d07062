/*
 * migrun.c — the runner of one migration: builds the plan (migplan.h) and
 * walks its phases in order, each through the function below, saving the
 * resume token where the plan says; on failure does what migplan_outcome_of
 * says (clean up, say how to go on).
 *
 * Owns: the run context's connections and plan for the length of migrun_run.
 * Never: parses the command line (migopts.c does) or decides what a resumed
 * run skips (migplan.c does).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "lobsync.h"
#include "migplan.h"
#include "migrate_internal.h"

/* What the phases of one run share beyond the mig. */
typedef struct migrun_state
{
	const migplan *plan; /* borrowed from migrun_run */
	int64_t t0;
	mig_verified verified;
	int differences;
	bool verify_failed;
} migrun_state;

/* A phase's result: MIGRUN_GO_ON, or the exit code (cmd.h) the run ends with, errbuf saying why. */
#define MIGRUN_GO_ON (-1)

/* The result of a phase that failed or not. */
static int
migrun_go_on(bool ok)
{
	return ok ? MIGRUN_GO_ON : EXIT_ERROR;
}

/* The result of a phase that ran a child: interrupted, it is resumable. */
static int
migrun_child_rc(bool ok)
{
	return ok ? MIGRUN_GO_ON : mig_signals ? EXIT_ABORTED : EXIT_ERROR;
}

/* Put back what a crashed run left; --force-clean drops what a previous run left. */
static int
migrun_recover(mig *m, char *errbuf, size_t errlen)
{
	/* a crashed --fast-restore-settings run left the target fast and unsafe: fix that first */
	if (!fastrestore_put_back(m, errbuf, errlen))
		return EXIT_ERROR;
	if (m->o.force_clean)
		runtoken_force_clean(m);
	/* from here on a kill leaves a token naming what to clean up */
	return MIGRUN_GO_ON;
}

/* Stream and apply until the cutover. */
static int
migrun_stream_apply(mig *m, char *errbuf, size_t errlen)
{
	int rc = follow_run(m, errbuf, errlen);

	/* either server may have restarted while streaming */
	pgsession_refresh(m->src, PGSESSION_SOURCE);
	pgsession_refresh(m->tgt, PGSESSION_TARGET);
	/* every change is on the target: a kill from here on only needs the finishing */
	return rc == EXIT_OK ? MIGRUN_GO_ON : rc;
}

/*
 * Large objects created, changed or unlinked on the source since the
 * snapshot, carried over now that the source is quiet (logical decoding
 * does not carry them). Run again by a --resume after the cutover.
 */
static int
migrun_large_objects(mig *m, char *errbuf, size_t errlen)
{
	const lobsync_opts o = {.owners = !m->o.no_owner,
	                        .privileges = !m->o.no_privileges,
	                        .stage = "LargeObjects",
	                        .stop = &mig_abort};
	lobsync_result r;
	event e;

	if (!lobsync_run(m->src, m->tgt, &o, &r, errbuf, errlen))
	{
		size_t n = strlen(errbuf);

		/* the way out when the cause cannot be fixed: the objects as the dump copied them */
		if (!mig_abort)
			snprintf(errbuf + n, errlen - n,
			         "; after fixing it, --resume carries them (or --resume --large-objects skip "
			         "leaves them as the dump copied them, and the verification says so)");
		return mig_abort ? EXIT_ABORTED : EXIT_ERROR;
	}
	event_begin(&e, "LargeObjects");
	event_int(&e, "source_objects", r.src_objects);
	event_int(&e, "created", r.created);
	event_int(&e, "rewritten", r.rewritten);
	event_int(&e, "unlinked", r.unlinked);
	event_int(&e, "owners_set", r.owners_set);
	event_int(&e, "grants_set", r.grants_set);
	event_num(&e, "mb_written", (double)r.bytes_written / (1024.0 * 1024.0));
	event_num(&e, "seconds", r.seconds);
	event_end(&e,
	          "large objects carried over: %lld on the source, %lld created, %lld rewritten, "
	          "%lld unlinked, %.1f MB written in %.1f s",
	          (long long)r.src_objects, (long long)r.created, (long long)r.rewritten,
	          (long long)r.unlinked, (double)r.bytes_written / (1024.0 * 1024.0), r.seconds);
	return MIGRUN_GO_ON;
}

/* --verify: compare; strict, a target not known equal fails the run. */
static int
migrun_verify(mig *m, migrun_state *s, char *errbuf, size_t errlen)
{
	s->verified = finish_verify(m, &s->differences, errbuf, errlen);
	if (m->o.verify == 2 && s->verified != MIG_VERIFY_EQUAL)
	{
		/* --verify strict: not Complete; a --resume verifies again */
		s->verify_failed = true;
		return EXIT_ERROR;
	}
	return MIGRUN_GO_ON;
}

/* The Complete event (the token says Complete already); errbuf holds what Verify found. */
static int
migrun_complete(mig *m, migrun_state *s, const char *errbuf)
{
	event e;
	bool clean = s->verified == MIG_VERIFY_EQUAL || s->verified == MIG_VERIFY_OFF;

	/* done and cut over; a target known (or not known) to differ is not a clean success */
	event_begin(&e, "Complete");
	if (!clean)
		event_level(&e, "warning");
	event_str(&e, "verified", finish_verified_name(s->verified));
	if (s->verified == MIG_VERIFY_DIFFERENCES)
		event_int(&e, "differences", s->differences);
	event_num(&e, "seconds", (double)(cli_now_ms() - s->t0) / 1000.0);
	if (clean)
		event_end(&e, "%s migration complete", m->o.online ? "online" : "offline");
	else
		event_end(&e, "%s migration complete, but %s (exit %d)", m->o.online ? "online" : "offline",
		          errbuf, EXIT_DIFFERS);
	return clean ? EXIT_OK : EXIT_DIFFERS;
}

/* Run one phase of the plan. */
static int
migrun_phase(mig *m, migrun_state *s, migplan_phase phase, char *errbuf, size_t errlen)
{
	switch (phase)
	{
		case MIGPLAN_VALIDATE:
			return migrun_go_on(preflight_run(m, errbuf, errlen));
		case MIGPLAN_PLAN:
			return dryrun_print(m, s->plan, errbuf, errlen);
		case MIGPLAN_RECOVER:
			return migrun_recover(m, errbuf, errlen);
		case MIGPLAN_PREPARE_SNAPSHOT:
			return migrun_go_on(snapshot_prepare(m, errbuf, errlen));
		case MIGPLAN_REATTACH:
			return migrun_go_on(snapshot_reattach(m, errbuf, errlen));
		case MIGPLAN_REATTACH_AFTER_CUTOVER:
			/* cut over already: only the finishing steps are left */
			return migrun_go_on(snapshot_reattach_after_cutover(m, errbuf, errlen));
		case MIGPLAN_DUMP:
			return migrun_child_rc(dumprun_dump(m, errbuf, errlen));
		case MIGPLAN_COPY:
			return migrun_child_rc(copyrun_copy(m, errbuf, errlen));
		case MIGPLAN_RESTORE:
			return migrun_child_rc(dumprun_restore(m, errbuf, errlen));
		case MIGPLAN_GUARD:
			return migrun_go_on(guardrun_apply(m, errbuf, errlen));
		case MIGPLAN_STREAM_APPLY:
			return migrun_stream_apply(m, errbuf, errlen);
		case MIGPLAN_LARGE_OBJECTS:
			return migrun_large_objects(m, errbuf, errlen);
		case MIGPLAN_GUARD_UNDO:
			/* the target's triggers and identity columns back, foreign keys NOT VALID */
			return migrun_go_on(guardrun_undo(m, "Guard", errbuf, errlen));
		case MIGPLAN_SEQUENCE_SYNC:
			sequences_sync(m);
			return MIGRUN_GO_ON;
		case MIGPLAN_CLEANUP:
			finish_cleanup(m, !m->o.keep_slot, true, false);
			return MIGRUN_GO_ON;
		case MIGPLAN_GUARD_VALIDATE:
			/* validated while the application may write already; before the ledger goes */
			return migrun_go_on(guardrun_validate(m, "Guard", errbuf, errlen));
		case MIGPLAN_DROP_PROGRESS:
			finish_cleanup(m, false, false, true);
			return MIGRUN_GO_ON;
		case MIGPLAN_VERIFY:
			return migrun_verify(m, s, errbuf, errlen);
		case MIGPLAN_COMPLETE:
			return migrun_complete(m, s, errbuf);
		case MIGPLAN_NPHASES:
			break;
	}
	snprintf(errbuf, errlen, "internal error: phase %d has no function", (int)phase);
	return EXIT_ERROR;
}

/* Walk the plan: each phase it runs, with the token saved around it. */
static int
migrun_walk(mig *m, migrun_state *s, char *errbuf, size_t errlen)
{
	int rc = MIGRUN_GO_ON;

	for (int i = 0; i < MIGPLAN_NPHASES && rc == MIGRUN_GO_ON; i++)
	{
		const migplan_step *step = &s->plan->steps[i];

		if (step->note)
			event_say(step->name, "info", "%s", step->note);
		if (step->action != MIGPLAN_RUN)
			continue;
		if (step->save_before != RESUME_NONE &&
		    !runtoken_save(m, step->save_before, errbuf, errlen))
			return EXIT_ERROR;
		rc = migrun_phase(m, s, step->phase, errbuf, errlen);
		if (rc == MIGRUN_GO_ON && step->save_after != RESUME_NONE &&
		    !runtoken_save(m, step->save_after, errbuf, errlen))
			return EXIT_ERROR;
	}
	return rc == MIGRUN_GO_ON ? EXIT_OK : rc;
}

/* A failed run: say why, clean up what cannot be resumed, say how to go on. */
static void
migrun_failed(mig *m, const migrun_state *s, int rc, const char *err)
{
	migplan_failure f = {.exit_code = rc,
	                     .online = m->o.online,
	                     .have_token = m->have_token,
	                     .token_stage = m->token.stage,
	                     .wrote_token = m->wrote_token,
	                     .restart = m->restart,
	                     .slot_gone = m->slot_gone,
	                     .created_slot = m->created_slot,
	                     .created_publication = m->created_publication,
	                     .verify_failed = s->verify_failed,
	                     .copy_direct = m->o.copy_direct,
	                     .guard_applied = m->guard_applied};
	migplan_outcome o;
	char gerr[2048];
	int rows = 0;

	migplan_outcome_of(&f, &o);
	if (!o.failed)
		return;
	if (err[0])
		event_say(o.stage, "error", "%s", err);
	if (o.undo_guard && m->tgt &&
	    (!guardrun_undo(m, "Error", gerr, sizeof(gerr)) ||
	     !guardrun_validate(m, "Error", gerr, sizeof(gerr))))
		event_say("Error", "warning", "%s", gerr);
	if (o.drop_created)
		finish_cleanup(m, true, true, false);
	if (o.remove_token)
		unlink(m->token_path);
	if (o.hint)
		event_say("Error", "info", "%s", o.hint);
	if (o.guard_note && m->tgt && guard_pending(m->tgt, &rows, gerr, sizeof(gerr)) && rows > 0)
		event_say(o.stage, "info",
		          "the guard stays in force on the target (%d changes recorded in " PGDBM_LEDGER
		          ": triggers disabled, foreign keys dropped, identity columns BY DEFAULT), as "
		          "the resume needs it: --resume finishes the migration and puts them back; "
		          "--force-clean puts them back too",
		          rows);
}

int
migrun_run(mig *m, int argc, char **argv)
{
	char err[4096] = "";
	int rc = EXIT_ERROR;
	const char *bindir = getenv("PG_BINDIR");
	migplan plan;
	migrun_state s = {.plan = &plan, .t0 = cli_now_ms(), .verified = MIG_VERIFY_OFF};

	snprintf(m->bindir, sizeof(m->bindir), "%s", bindir && bindir[0] ? bindir : PG_BINDIR);
	if (m->o.all_databases)
		rc = wholeserver_run(m, argc, argv, err, sizeof(err));
	else
	{
		if (m->o.resume_file)
			snprintf(m->token_path, sizeof(m->token_path), "%s", m->o.resume_file);
		else
			resume_path(m->o.dump_path, m->token_path, sizeof(m->token_path));
		if (runtoken_check(m, err, sizeof(err)))
		{
			scope_filters f = mig_scope(m);
			migplan_input in = {.online = m->o.online,
			                    .dry_run = m->o.dry_run,
			                    .sequence_sync = m->o.sequence_sync,
			                    .verify = m->o.verify != 0,
			                    .copy_direct = m->o.copy_direct,
			                    /* pg_dump copies them only when nothing is filtered */
			                    .large_objects = !m->o.skip_large_objects && !scope_filtered(&f) &&
			                                     strcmp(m->o.scope, "schema-only") != 0,
			                    .resume = m->o.resume,
			                    .token_stage = m->token.stage};

			migplan_build(&in, &plan);
			rc = migrun_walk(m, &s, err, sizeof(err));
		}
	}
	migrun_failed(m, &s, rc, err);
	copyrun_release(m);
	replconn_close(&m->rc);
	srcplan_free(&m->plan);
	PQfinish(m->src);
	PQfinish(m->tgt);
	m->src = m->tgt = NULL;
	return rc;
}
