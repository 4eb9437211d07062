/*
 * guardrun.c — the guard as phases of the run (guard.c does the work): in
 * force before streaming, undone at cutover, its foreign keys validated
 * after, each with its event and a message saying how to go on.
 *
 * Owns: nothing. Never: touches the ledger but through guard.h.
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

/* Before streaming: the guard in force on the target (identity columns always). */
bool
guardrun_apply(mig *m, char *errbuf, size_t errlen)
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
bool
guardrun_undo(mig *m, const char *stage, char *errbuf, size_t errlen)
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
bool
guardrun_validate(mig *m, const char *stage, char *errbuf, size_t errlen)
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
