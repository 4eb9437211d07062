/*
 * main.c — pg_dbmigrator's entry point: parses the command word and hands
 * off to the command. Owns process exit codes; nothing else calls exit().
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "pgoutput.h"

/* Print the top-level usage to f. */
static void
usage(FILE *f)
{
	fprintf(f,
	        "pg_dbmigrator moves a live PostgreSQL database to another server.\n"
	        "\n"
	        "Usage:\n"
	        "  pg_dbmigrator --mode offline|online --source URI --target URI [options]\n"
	        "                             migrate (see the options below)\n"
	        "  pg_dbmigrator decode --source CONNSTR --slot-name NAME --publication NAME [...]\n"
	        "                             print the decoded changes of a replication slot\n"
	        "  pg_dbmigrator bench --source CONNSTR --target CONNSTR --slot-name NAME\n"
	        "                      --publication NAME --endpos LSN [...]\n"
	        "                             apply a slot's backlog to a target, report throughput\n"
	        "  pg_dbmigrator verify --source URI --target URI [...]\n"
	        "                             compare every table, sequence and object\n"
	        "  pg_dbmigrator status --dump-path PATH [--json]\n"
	        "                             where a running or interrupted migration is\n"
	        "  pg_dbmigrator shadow prepare|swap|start|rollback|list|status|cleanup|verify ...\n"
	        "                             refresh a live target through shadow tables and a swap\n"
	        "  pg_dbmigrator --help       show this help\n"
	        "  pg_dbmigrator --version    show the version\n"
	        "\n"
	        "\"pg_dbmigrator COMMAND --help\" describes each command.\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2)
	{
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "decode") == 0)
		return cmd_decode(argc - 1, argv + 1);
	if (strcmp(argv[1], "bench") == 0)
		return cmd_bench(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0)
		return cmd_status(argc - 1, argv + 1);
	if (strcmp(argv[1], "shadow") == 0)
		return cmd_shadow(argc - 1, argv + 1);
	/* --mode verify, as in the tool this one re-implements */
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--mode") == 0 && strcmp(argv[i + 1], "verify") == 0)
			return cmd_verify(argc, argv);
		else if (strcmp(argv[i], "--mode=verify") == 0)
			return cmd_verify(argc, argv);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
	{
		usage(stdout);
		printf("\n");
		return cmd_migrate(argc, argv);
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
	{
		printf("pg_dbmigrator %s (pgoutput protocol %d-%d)\n", PACKAGE_VERSION,
		       PGO_PROTO_VERSION_MIN, PGO_PROTO_VERSION_MAX);
		return EXIT_OK;
	}
	if (argv[1][0] == '-')
		return cmd_migrate(argc, argv);
	fprintf(stderr,
	        "pg_dbmigrator: unknown command or option \"%s\"\nTry \"pg_dbmigrator --help\".\n",
	        argv[1]);
	return EXIT_USAGE;
}
