/*
 * cmd_migrate.c — `pg_dbmigrator --mode offline|online`: the command line of
 * a migration and nothing else.
 *
 *   Validate → PrepareSnapshot → Dump → Restore → Guard → StreamApply
 *   → (Lag …) → CaughtUp → Cutover → SequenceSync → Complete
 *
 * Parses the options (migopts.c), splits the two connection strings into
 * password-free text and password (conninfo.c), installs the signal
 * handlers (a first SIGINT/SIGTERM asks for the cutover, a second aborts),
 * and hands the run to migrun_run (migrun.c), which walks the phases.
 * docs/ARCHITECTURE.md describes the phases and the rules between them.
 *
 * Owns: the run context (on its stack) and its two conninfos. Never: does
 * any of the migration's work itself.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "migrate_internal.h"

static void
mig_on_signal(int sig)
{
	(void)sig;
	if (++mig_signals >= 2)
		mig_abort = 1;
}

int
cmd_migrate(int argc, char **argv)
{
	mig m;
	bool help;
	char err[4096] = "";
	struct sigaction sa;
	int rc;

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
	events_init(m.o.json);
	if (m.o.event_tag)
		events_set_tag(m.o.event_tag);
	if (migopts_compat_note(&m.o, err, sizeof(err))) /* the other tools' flags, said once */
		event_say("Validate", "info", "%s", err);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mig_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = migrun_run(&m, argc, argv);
	conninfo_free(&m.src_ci);
	conninfo_free(&m.tgt_ci);
	return rc;
}
