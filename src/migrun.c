/*
 * migrun.c — the runner of one migration: walks the phases in order, skips
 * what a resumed run had done, and on failure says what is kept and how to
 * go on.
 *
 * Owns: the run context for the length of migrun_run. Never: parses the
 * command line (migopts.c does).
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

int
migrun_run(mig *m, int argc, char **argv)
{
	char err[4096] = "";
	int rc = EXIT_ERROR;
	int64_t t0 = cli_now_ms();
	const char *bindir = getenv("PG_BINDIR");
	mig_verified verified = MIG_VERIFY_OFF;
	int differences = 0;
	bool verify_failed = false;

	snprintf(m->bindir, sizeof(m->bindir), "%s", bindir && bindir[0] ? bindir : PG_BINDIR);
	if (m->o.all_databases)
	{
		rc = wholeserver_run(m, argc, argv, err, sizeof(err));
		goto done;
	}
	if (m->o.resume_file)
		snprintf(m->token_path, sizeof(m->token_path), "%s", m->o.resume_file);
	else
		resume_path(m->o.dump_path, m->token_path, sizeof(m->token_path));
	if (!runtoken_check(m, err, sizeof(err)))
		goto done;
	if (m->o.resume && m->token.stage == RESUME_COMPLETE)
	{
		event_say("Complete", "info", "the interrupted run had completed: nothing to resume");
		rc = EXIT_OK;
		goto done;
	}
	if (!preflight_run(m, err, sizeof(err)))
		goto done;
	if (m->o.dry_run)
	{
		rc = dryrun_print(m, err, sizeof(err));
		goto done;
	}
	/* a crashed --fast-restore-settings run left the target fast and unsafe: fix that first */
	if (!fastrestore_put_back(m, err, sizeof(err)))
		goto done;
	if (m->o.force_clean)
		runtoken_force_clean(m);
	if (m->o.resume && m->token.stage == RESUME_CUTOVER)
	{
		/* cut over already: only the finishing steps are left */
		if (m->o.online && !snapshot_reattach_after_cutover(m, err, sizeof(err)))
			goto done;
	}
	else if (m->o.resume)
	{
		if (m->o.online && !snapshot_reattach(m, err, sizeof(err)))
			goto done;
	}
	else
	{
		/* from here on a kill leaves a token naming what to clean up */
		if (!runtoken_save(m, RESUME_STARTED, err, sizeof(err)))
			goto done;
		if (m->o.online && !snapshot_prepare(m, err, sizeof(err)))
			goto done;
		if (!runtoken_save(m, RESUME_SNAPSHOT, err, sizeof(err)))
			goto done;
		if (!dumprun_dump(m, err, sizeof(err)))
		{
			if (mig_signals)
				rc = EXIT_ABORTED;
			goto done;
		}
		if (!runtoken_save(m, RESUME_DUMPED, err, sizeof(err)))
			goto done;
	}
	if (m->o.resume && m->token.stage == RESUME_CUTOVER)
		event_say("Restore", "info", "resuming: the interrupted run had cut over already");
	else if (!m->o.resume || m->token.stage < RESUME_RESTORED)
	{
		if (!dumprun_restore(m, err, sizeof(err)))
		{
			if (mig_signals)
				rc = EXIT_ABORTED;
			goto done;
		}
		if (!runtoken_save(m, RESUME_RESTORED, err, sizeof(err)))
			goto done;
	}
	else
		event_say("Restore", "info", "resuming: dump and restore were done by the interrupted run");
	if (m->o.online)
	{
		if (!m->o.resume || m->token.stage < RESUME_CUTOVER)
		{
			if (!guardrun_apply(m, err, sizeof(err)))
				goto done;
			rc = follow_run(m, err, sizeof(err));
			/* either server may have restarted while streaming */
			pgsession_refresh(m->src, PGSESSION_SOURCE);
			pgsession_refresh(m->tgt, PGSESSION_TARGET);
			if (rc != EXIT_OK)
				goto done;
			rc = EXIT_ERROR;
			/* every change is on the target: a kill from here on only needs the finishing */
			if (!runtoken_save(m, RESUME_CUTOVER, err, sizeof(err)))
				goto done;
		}
		/* the target's triggers and identity columns back, foreign keys NOT VALID */
		if (!guardrun_undo(m, "Guard", err, sizeof(err)))
			goto done;
		if (m->o.sequence_sync)
			sequences_sync(m);
	}
	finish_cleanup(m, !m->o.keep_slot, true, false);
	/* validated while the application may write already; before the ledger goes */
	if (m->o.online && !guardrun_validate(m, "Guard", err, sizeof(err)))
		goto done;
	finish_cleanup(m, false, false, true);
	verified = m->o.verify ? finish_verify(m, &differences, err, sizeof(err)) : MIG_VERIFY_OFF;
	if (m->o.verify == 2 && verified != MIG_VERIFY_EQUAL)
	{
		/* --verify strict: not Complete; a --resume verifies again */
		verify_failed = true;
		rc = EXIT_ERROR;
		goto done;
	}
	if (!m->o.dry_run && !runtoken_save(m, RESUME_COMPLETE, err, sizeof(err)))
		goto done;
	{
		event e;
		bool clean = verified == MIG_VERIFY_EQUAL || verified == MIG_VERIFY_OFF;

		/* done and cut over; a target known (or not known) to differ is not a clean success */
		event_begin(&e, "Complete");
		if (!clean)
			event_level(&e, "warning");
		event_str(&e, "verified", finish_verified_name(verified));
		if (verified == MIG_VERIFY_DIFFERENCES)
			event_int(&e, "differences", differences);
		event_num(&e, "seconds", (double)(cli_now_ms() - t0) / 1000.0);
		if (clean)
			event_end(&e, "%s migration complete", m->o.online ? "online" : "offline");
		else
			event_end(&e, "%s migration complete, but %s (exit %d)",
			          m->o.online ? "online" : "offline", err, EXIT_DIFFERS);
		rc = clean ? EXIT_OK : EXIT_DIFFERS;
	}
done:
	if (rc != EXIT_OK && rc != EXIT_DIFFERS)
	{
		if (err[0])
			event_say(rc == EXIT_ABORTED ? "Aborted" : "Error", "error", "%s", err);
		if (m->restart || m->slot_gone)
		{
			char gerr[2048];

			/* this migration cannot go on: the target's triggers and keys come back */
			if (m->tgt && (!guardrun_undo(m, "Error", gerr, sizeof(gerr)) ||
			               !guardrun_validate(m, "Error", gerr, sizeof(gerr))))
				event_say("Error", "warning", "%s", gerr);
			if (m->restart)
			{
				/* the stream lacks a change: resuming cannot help, so nothing is kept */
				finish_cleanup(m, true, true, false);
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
			          m->o.online ? " and cut over" : "");
		else if (rc == EXIT_ERROR && m->have_token && m->token.stage >= RESUME_DUMPED)
			event_say("Error", "info",
			          m->o.online ? "the slot and the dump are kept: fix the cause and run again "
			                        "with --resume, or start over with --force-clean"
			                      : "the dump is kept: fix the cause and run again with --resume "
			                        "(the restore starts again from the dump), or start over with "
			                        "--force-clean");
		else if (rc == EXIT_ERROR && m->wrote_token)
		{
			/* nothing to resume from: leave no slot holding WAL; --resume starts over */
			finish_cleanup(m, true, true, false);
			event_say("Error", "info",
			          "nothing could be kept (the dump had not finished): fix the cause and run "
			          "again with --resume to start over, or with --force-clean");
		}
		else if (rc == EXIT_ERROR && (m->created_slot || m->created_publication))
			finish_cleanup(m, true, true, false);
		else if (rc == EXIT_ABORTED && m->have_token && m->token.stage < RESUME_DUMPED)
		{
			/* aborted before the dump finished: its snapshot is gone, nothing to resume */
			finish_cleanup(m, true, true, false);
			unlink(m->token_path);
		}
		if (!m->slot_gone && m->guard_applied && m->tgt)
		{
			int rows = 0;
			char gerr[512];

			if (guard_pending(m->tgt, &rows, gerr, sizeof(gerr)) && rows > 0)
				event_say(
				    rc == EXIT_ABORTED ? "Aborted" : "Error", "info",
				    "the guard stays in force on the target (%d changes recorded in " PGDBM_LEDGER
				    ": triggers disabled, foreign keys dropped, "
				    "identity columns BY DEFAULT), as the resume needs it: --resume finishes "
				    "the migration and puts them back; --force-clean puts them back too",
				    rows);
		}
	}
	replconn_close(&m->rc);
	srcplan_free(&m->plan);
	PQfinish(m->src);
	PQfinish(m->tgt);
	m->src = m->tgt = NULL;
	return rc;
}
