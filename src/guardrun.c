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

/* One way the guard is put back: what it runs, what it says if that fails and when done. */
typedef struct guardrun_put_back
{
	bool (*run)(PGconn *tgt, guard_counts *done, char *errbuf, size_t errlen);
	bool validates;     /* counts validated foreign keys (else what it re-enabled) */
	const char *cannot; /* the error, before the server's message */
	const char *go_on;  /* after it: how to go on */
	const char *done;   /* the event's message */
} guardrun_put_back;

static const guardrun_put_back guardrun_undo_step = {
    .run = guard_undo,
    .validates = false,
    .cannot = "could not put back what the guard changed on the target",
    .go_on = "; fix the cause and run again with --resume (" PGDBM_LEDGER " keeps what is left)",
    .done = "the target's triggers and identity columns are back as on the source, its foreign "
            "keys re-added NOT VALID (validated after the cutover)"};

static const guardrun_put_back guardrun_validate_step = {
    .run = guard_validate,
    .validates = true,
    .cannot = "could not validate a foreign key the guard re-added on the target",
    .go_on = "; fix the cause and run again with --resume",
    .done = "foreign keys validated on the target (as on the source)"};

/* Run one way of putting the guard back; an event at stage if it did anything. */
static bool
guardrun_put(mig *m, const char *stage, const guardrun_put_back *how, char *errbuf, size_t errlen)
{
	guard_counts c;
	char why[2048];
	event e;
	int64_t t0 = cli_now_ms();

	if (!how->run(m->tgt, &c, errbuf, errlen))
	{
		snprintf(why, sizeof(why), "%s", errbuf);
		snprintf(errbuf, errlen, "%s: %s%s", how->cannot, why, how->go_on);
		return false;
	}
	if ((how->validates ? c.validated : c.triggers + c.foreign_keys + c.identities) == 0)
		return true;
	event_begin(&e, stage);
	if (how->validates)
		event_int(&e, "validated", c.validated);
	else
	{
		event_int(&e, "triggers", c.triggers);
		event_int(&e, "foreign_keys", c.foreign_keys);
		event_int(&e, "identities", c.identities);
	}
	event_num(&e, "seconds", (double)(cli_now_ms() - t0) / 1000.0);
	event_end(&e, "%s", how->done);
	return true;
}

/* At cutover (or to end a run): put back what the ledger records, foreign keys NOT VALID. */
bool
guardrun_undo(mig *m, const char *stage, char *errbuf, size_t errlen)
{
	return guardrun_put(m, stage, &guardrun_undo_step, errbuf, errlen);
}

/* After the cutover: validate the re-added foreign keys; the ledger is then empty. */
bool
guardrun_validate(mig *m, const char *stage, char *errbuf, size_t errlen)
{
	return guardrun_put(m, stage, &guardrun_validate_step, errbuf, errlen);
}
