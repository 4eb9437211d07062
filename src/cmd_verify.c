/*
 * cmd_verify.c — `pg_dbmigrator verify`: compare source and target.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "conninfo.h"
#include "verify.h"

#define VERIFY_MAX_LIST 64

static void
verify_usage(FILE *f)
{
	fprintf(f, "pg_dbmigrator verify compares a source and a target database: every table's row\n"
	           "count and content checksum (COPY of both sides at once, rows hashed with XXH3,\n"
	           "order-independent), sequences, the names of tables, indexes and constraints,\n"
	           "and large objects.\n"
	           "\n"
	           "Usage:\n"
	           "  pg_dbmigrator verify --source URI --target URI [options]\n"
	           "\n"
	           "Options:\n"
	           "  --source URI, --target URI   (or PG_DBMIGRATOR_SOURCE / PG_DBMIGRATOR_TARGET)\n"
	           "  --schema NAME, --table NAME, --exclude-schema NAME, --exclude-table NAME\n"
	           "                               the tables to compare (repeatable)\n"
	           "  --jobs N                     tables compared in parallel (default 1)\n"
	           "  --json                       one JSON object\n"
	           "  --help\n"
	           "\n"
	           "Large objects are compared too (by OID: size and content hash) unless the\n"
	           "tables are filtered.\n"
	           "\n"
	           "Exit codes: 0 equal, 4 differences (each named), 1 could not compare (the\n"
	           "message says why), 2 bad usage.\n");
}

int
cmd_verify(int argc, char **argv)
{
	enum
	{
		O_SOURCE = 256,
		O_TARGET,
		O_SCHEMA,
		O_TABLE,
		O_XSCHEMA,
		O_XTABLE,
		O_JOBS,
		O_JSON,
		O_HELP,
		O_MODE
	};
	static const struct option longopts[] = {{"source", required_argument, NULL, O_SOURCE},
	                                         {"target", required_argument, NULL, O_TARGET},
	                                         {"schema", required_argument, NULL, O_SCHEMA},
	                                         {"table", required_argument, NULL, O_TABLE},
	                                         {"exclude-schema", required_argument, NULL, O_XSCHEMA},
	                                         {"exclude-table", required_argument, NULL, O_XTABLE},
	                                         {"jobs", required_argument, NULL, O_JOBS},
	                                         {"json", no_argument, NULL, O_JSON},
	                                         {"mode", required_argument, NULL, O_MODE},
	                                         {"help", no_argument, NULL, O_HELP},
	                                         {NULL, 0, NULL, 0}};
	const char *lists[4][VERIFY_MAX_LIST + 1] = {{NULL}};
	int counts[4] = {0};
	verify_opts o = {0};
	verify_result r;
	bool json = false;
	int c;
	char err[2048];
	conninfo ci;

	o.source = getenv("PG_DBMIGRATOR_SOURCE");
	o.target = getenv("PG_DBMIGRATOR_TARGET");
	o.jobs = 1;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case O_SOURCE:
				o.source = optarg;
				break;
			case O_TARGET:
				o.target = optarg;
				break;
			case O_SCHEMA:
			case O_TABLE:
			case O_XSCHEMA:
			case O_XTABLE:
			{
				int k = c - O_SCHEMA;

				if (counts[k] == VERIFY_MAX_LIST)
				{
					fprintf(stderr, "pg_dbmigrator verify: too many filters\n");
					return EXIT_USAGE;
				}
				lists[k][counts[k]++] = optarg;
				break;
			}
			case O_JOBS:
				if (!cli_parse_int(optarg, 1, 64, &o.jobs))
				{
					fprintf(stderr, "pg_dbmigrator verify: invalid --jobs \"%s\": use 1 to 64\n",
					        optarg);
					return EXIT_USAGE;
				}
				break;
			case O_JSON:
				json = true;
				break;
			case O_MODE:
				if (strcmp(optarg, "verify") != 0)
				{
					fprintf(stderr, "pg_dbmigrator verify: --mode must be verify here\n");
					return EXIT_USAGE;
				}
				break;
			case O_HELP:
				verify_usage(stdout);
				return EXIT_OK;
			default:
				fprintf(stderr, "pg_dbmigrator verify: unknown or incomplete option \"%s\"\n",
				        argv[optind - 1]);
				return EXIT_USAGE;
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "pg_dbmigrator verify: unexpected argument \"%s\"\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (!o.source || !o.target)
	{
		fprintf(stderr, "pg_dbmigrator verify: --source and --target are required\n");
		return EXIT_USAGE;
	}
	for (int k = 0; k < 2; k++)
	{
		if (!conninfo_parse(k ? o.target : o.source, &ci, err, sizeof(err)))
		{
			fprintf(stderr, "pg_dbmigrator verify: --%s: %s\n", k ? "target" : "source", err);
			return EXIT_USAGE;
		}
		conninfo_free(&ci);
	}
	o.schemas = lists[0];
	o.tables = lists[1];
	o.exclude_schemas = lists[2];
	o.exclude_tables = lists[3];
	if (!verify_run(&o, &r, err, sizeof(err)))
	{
		fprintf(stderr, "pg_dbmigrator verify: %s\n", err);
		return EXIT_ERROR;
	}
	verify_print(&r, json, stdout);
	c = r.differences ? EXIT_DIFFERS : EXIT_OK;
	verify_free(&r);
	return c;
}
