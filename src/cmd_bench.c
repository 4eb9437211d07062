/*
 * cmd_bench.c — `pg_dbmigrator bench`: drain a slot's backlog into a target
 * with the apply engine, up to --endpos, and report the throughput.
 *
 * Owns: the run's replication connection and its pipeline (ring, receiver,
 * applier: see pipeline.h).
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "apply.h"
#include "cli.h"
#include "cmd.h"
#include "pipeline.h"
#include "replconn.h"
#include "pgdbm_schema.h"

#define BENCH_MAX_PUBLICATIONS 32

typedef struct bench_opts
{
	const char *source, *target, *slot; /* borrowed from argv or the environment */
	const char *publications[BENCH_MAX_PUBLICATIONS + 1];
	int npublications;
	pgo_lsn endpos;
	bool json;
	size_t ring_size;
	int status_interval_ms;
	int proto_version;
	bool catch_up_stream;  /* --catch-up stream: no SQL catch-up before streaming */
	size_t catch_up_chunk; /* --catch-up-chunk: WAL per SQL chunk; 0: the default */
	apply_opts apply;
} bench_opts;

static volatile sig_atomic_t bench_interrupted = 0;

static void
bench_on_signal(int sig)
{
	(void)sig;
	bench_interrupted = 1;
}

static void
bench_usage(FILE *f)
{
	fprintf(f,
	        "pg_dbmigrator bench drains a replication slot's backlog into a target with\n"
	        "pg_dbmigrator's apply engine, up to --endpos, and reports the throughput.\n"
	        "\n"
	        "Usage:\n"
	        "  pg_dbmigrator bench --source CONNSTR --target CONNSTR --slot-name NAME\n"
	        "                      --publication NAME --endpos LSN [options]\n"
	        "\n"
	        "Options:\n"
	        "  --source CONNSTR        source (or PG_DBMIGRATOR_SOURCE)\n"
	        "  --target CONNSTR        target (or PG_DBMIGRATOR_TARGET)\n"
	        "  --slot-name NAME        an existing pgoutput slot on the source\n"
	        "  --publication NAME      publication to read (repeatable)\n"
	        "  --endpos LSN            stop after the last transaction committed at or before LSN\n"
	        "  --json                  print the result as one JSON object\n"
	        "  --group-commit N        source transactions per target transaction, at most\n"
	        "                          (default %d; %d while the backlog is read through SQL)\n"
	        "  --on-missing-row MODE   error (default) or skip an UPDATE/DELETE that finds no row\n"
	        "  --synchronous-commit B  on: every target commit waits for its disk; off (default):\n"
	        "                          one in 0.2 s does, as in a migration\n"
	        "  --skip-lsn LSN          skip the source transaction committed at LSN\n"
	        "  --ring-size SIZE        buffer between receiver and apply (default 64MB)\n"
	        "  --status-interval SECS  standby status update interval (default 10)\n"
	        "  --proto-version N       pgoutput protocol version (default: the highest)\n"
	        "  --insert-method M       long runs of inserts by copy (default) or values\n"
	        "                          (multi-row INSERT)\n"
	        "  --catch-up MODE         sql (default): read the backlog through SQL\n"
	        "                          (pg_logical_slot_peek_binary_changes), then stream;\n"
	        "                          stream: the replication stream only\n"
	        "  --catch-up-chunk SIZE   WAL read per SQL chunk (default 256MB): the source\n"
	        "                          decodes a chunk before it sends its first change\n"
	        "  --help                  show this help\n"
	        "\n"
	        "Progress is kept in " PGDBM_PROGRESS " on the target: a second run\n"
	        "continues where the first one committed. Ctrl+C stops cleanly.\n",
	        APPLY_DEFAULT_GROUP_TXNS, APPLY_CATCHUP_GROUP_TXNS);
}

/*
 * An option that takes one of two words: *out is false for first, true for
 * second; anything else is refused, naming both.
 */
static bool
bench_choice(const char *opt, const char *arg, const char *first, const char *second, bool *out)
{
	if (strcmp(arg, first) != 0 && strcmp(arg, second) != 0)
	{
		fprintf(stderr, "pg_dbmigrator bench: invalid %s \"%s\": use %s or %s\n", opt, arg, first,
		        second);
		return false;
	}
	*out = strcmp(arg, second) == 0;
	return true;
}

static bool
bench_parse_args(int argc, char **argv, bench_opts *o, bool *help)
{
	enum
	{
		OPT_SOURCE = 256,
		OPT_TARGET,
		OPT_SLOT,
		OPT_PUB,
		OPT_ENDPOS,
		OPT_JSON,
		OPT_GROUP,
		OPT_MISSING,
		OPT_SKIP,
		OPT_RING,
		OPT_STATUS,
		OPT_PROTO,
		OPT_INSERT,
		OPT_SYNCCOMMIT,
		OPT_CATCHUP,
		OPT_CATCHUP_CHUNK,
		OPT_HELP
	};
	static const struct option longopts[] = {
	    {"source", required_argument, NULL, OPT_SOURCE},
	    {"target", required_argument, NULL, OPT_TARGET},
	    {"slot-name", required_argument, NULL, OPT_SLOT},
	    {"publication", required_argument, NULL, OPT_PUB},
	    {"endpos", required_argument, NULL, OPT_ENDPOS},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"group-commit", required_argument, NULL, OPT_GROUP},
	    {"on-missing-row", required_argument, NULL, OPT_MISSING},
	    {"skip-lsn", required_argument, NULL, OPT_SKIP},
	    {"ring-size", required_argument, NULL, OPT_RING},
	    {"status-interval", required_argument, NULL, OPT_STATUS},
	    {"proto-version", required_argument, NULL, OPT_PROTO},
	    {"insert-method", required_argument, NULL, OPT_INSERT},
	    {"synchronous-commit", required_argument, NULL, OPT_SYNCCOMMIT},
	    {"catch-up", required_argument, NULL, OPT_CATCHUP},
	    {"catch-up-chunk", required_argument, NULL, OPT_CATCHUP_CHUNK},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0}};
	int c, secs;

	memset(o, 0, sizeof(*o));
	*help = false;
	o->source = getenv("PG_DBMIGRATOR_SOURCE");
	o->target = getenv("PG_DBMIGRATOR_TARGET");
	o->ring_size = 64 * 1024 * 1024;
	o->status_interval_ms = 10000;
	o->apply.group_txns = APPLY_DEFAULT_GROUP_TXNS;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case OPT_SOURCE:
				o->source = optarg;
				break;
			case OPT_TARGET:
				o->target = optarg;
				break;
			case OPT_SLOT:
				o->slot = optarg;
				break;
			case OPT_PUB:
				if (o->npublications == BENCH_MAX_PUBLICATIONS)
				{
					fprintf(stderr, "pg_dbmigrator bench: at most %d --publication\n",
					        BENCH_MAX_PUBLICATIONS);
					return false;
				}
				o->publications[o->npublications++] = optarg;
				break;
			case OPT_ENDPOS:
			case OPT_SKIP:
				if (!pgo_lsn_parse(optarg, c == OPT_ENDPOS ? &o->endpos : &o->apply.skip_lsn))
				{
					fprintf(stderr,
					        "pg_dbmigrator bench: invalid LSN \"%s\" (use the form 0/16B3748)\n",
					        optarg);
					return false;
				}
				break;
			case OPT_JSON:
				o->json = true;
				break;
			case OPT_GROUP:
				if (!cli_parse_int(optarg, 1, 1000000, &o->apply.group_txns))
				{
					fprintf(stderr,
					        "pg_dbmigrator bench: invalid --group-commit \"%s\": use 1 to "
					        "1000000\n",
					        optarg);
					return false;
				}
				/* a value given holds for the backlog too */
				o->apply.catchup_group_txns = o->apply.group_txns;
				break;
			case OPT_CATCHUP:
				if (!bench_choice("--catch-up", optarg, "sql", "stream", &o->catch_up_stream))
					return false;
				break;
			case OPT_CATCHUP_CHUNK:
				if (!cli_parse_size(optarg, &o->catch_up_chunk) || o->catch_up_chunk < 64 * 1024)
				{
					fprintf(stderr,
					        "pg_dbmigrator bench: invalid --catch-up-chunk \"%s\": use a size "
					        "of at least 64kB, e.g. 256MB\n",
					        optarg);
					return false;
				}
				break;
			case OPT_SYNCCOMMIT:
				if (!bench_choice("--synchronous-commit", optarg, "off", "on",
				                  &o->apply.synchronous_commit))
					return false;
				break;
			case OPT_MISSING:
				if (!bench_choice("--on-missing-row", optarg, "error", "skip",
				                  &o->apply.skip_missing))
					return false;
				break;
			case OPT_RING:
				if (!cli_parse_size(optarg, &o->ring_size) || o->ring_size < 64 * 1024)
				{
					fprintf(stderr,
					        "pg_dbmigrator bench: invalid --ring-size \"%s\": use a size of "
					        "at least 64kB, e.g. 64MB\n",
					        optarg);
					return false;
				}
				break;
			case OPT_STATUS:
				if (!cli_parse_int(optarg, 1, 3600, &secs))
				{
					fprintf(stderr,
					        "pg_dbmigrator bench: invalid --status-interval \"%s\": use 1 to "
					        "3600 seconds\n",
					        optarg);
					return false;
				}
				o->status_interval_ms = secs * 1000;
				break;
			case OPT_PROTO:
				if (!cli_parse_int(optarg, PGO_PROTO_VERSION_MIN, PGO_PROTO_VERSION_MAX,
				                   &o->proto_version))
				{
					fprintf(stderr, "pg_dbmigrator bench: invalid --proto-version \"%s\"\n",
					        optarg);
					return false;
				}
				break;
			case OPT_INSERT:
				if (!bench_choice("--insert-method", optarg, "copy", "values", &o->apply.no_copy))
					return false;
				break;
			case OPT_HELP:
				*help = true;
				return true;
			default:
				fprintf(stderr, "pg_dbmigrator bench: unknown or incomplete option \"%s\"\n",
				        argv[optind - 1]);
				return false;
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "pg_dbmigrator bench: unexpected argument \"%s\"\n", argv[optind]);
		return false;
	}
	if (!o->source || !o->target || !o->slot || o->npublications == 0 || !o->endpos)
	{
		fprintf(stderr, "pg_dbmigrator bench: --source, --target, --slot-name, --publication and "
		                "--endpos are required (see --help)\n");
		return false;
	}
	o->apply.target = o->target;
	o->apply.slot_name = o->slot;
	return true;
}

/* Print the result as a line or a JSON object. */
static void
bench_report(const bench_opts *o, const applier *a, uint64_t handovers, double secs, pgo_lsn from,
             pgo_lsn to)
{
	struct rusage ru;
	const apply_stats *st = &a->stats;
	uint64_t rows = st->inserts + st->updates + st->deletes;
	double wal_mib = to > from ? (double)(to - from) / (1024.0 * 1024.0) : 0;
	char lsn[PGO_LSN_STRLEN];
	double cpu;

	getrusage(RUSAGE_SELF, &ru);
	cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	      ru.ru_stime.tv_usec / 1e6;
	if (secs <= 0)
		secs = 1e-6;
	if (o->json)
		printf("{\"seconds\":%.3f,\"row_changes\":%llu,\"row_changes_per_sec\":%.0f,"
		       "\"transactions\":%llu,\"transactions_per_sec\":%.0f,\"wal_mib\":%.1f,"
		       "\"wal_mib_per_sec\":%.2f,\"peak_rss_kb\":%ld,\"inserts\":%llu,\"updates\":%llu,"
		       "\"deletes\":%llu,\"truncated_tables\":%llu,\"target_transactions\":%llu,"
		       "\"target_statements\":%llu,\"target_copies\":%llu,\"skipped_transactions\":%llu,"
		       "\"receiver_handovers\":%llu,\"cpu_seconds\":%.2f,\"applied_lsn\":\"%s\"}\n",
		       secs, (unsigned long long)rows, rows / secs, (unsigned long long)st->txns,
		       st->txns / secs, wal_mib, wal_mib / secs, ru.ru_maxrss,
		       (unsigned long long)st->inserts, (unsigned long long)st->updates,
		       (unsigned long long)st->deletes, (unsigned long long)st->truncates,
		       (unsigned long long)st->groups, (unsigned long long)st->statements,
		       (unsigned long long)st->copies, (unsigned long long)st->skipped_txns,
		       (unsigned long long)handovers, cpu, pgo_lsn_format(a->committed_lsn, lsn));
	else
		printf("applied %llu row changes in %llu transactions in %.2f s: %.0f rows/s, %.0f "
		       "transactions/s, %.2f WAL MiB/s; peak RSS %ld kB; applied up to %s\n",
		       (unsigned long long)rows, (unsigned long long)st->txns, secs, rows / secs,
		       st->txns / secs, wal_mib / secs, ru.ru_maxrss,
		       pgo_lsn_format(a->committed_lsn, lsn));
	fflush(stdout);
}

int
cmd_bench(int argc, char **argv)
{
	bench_opts opts;
	replconn rc = {0};
	static pipeline pl; /* big: the decoder's column storage */
	bool ok = false;
	stream_opts so = {0};
	replslot slot;
	replstart start = {0};
	bool found, help;
	struct sigaction sa;
	int64_t t0;
	char err[2048] = "";
	stream_end end;

	if (!bench_parse_args(argc, argv, &opts, &help))
		return EXIT_USAGE;
	if (help)
	{
		bench_usage(stdout);
		return EXIT_OK;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bench_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (!pipeline_init(&pl, apply_rel_free, err, sizeof(err)))
		goto error;
	if (!replconn_open(&rc, opts.source, err, sizeof(err)))
		goto error;
	if (!replconn_find_slot(&rc, opts.slot, &found, &slot, err, sizeof(err)))
		goto error;
	if (!found)
	{
		snprintf(err, sizeof(err), "replication slot \"%s\" does not exist on the source",
		         opts.slot);
		goto error;
	}
	if (!replconn_check_identity(&rc, opts.publications, err, sizeof(err)))
		goto error;
	/* bench does not know when the slot was made: its progress row is tied to the source only */
	opts.apply.source_system = rc.system_id;
	opts.apply.resuming = true;
	if (!pipeline_open_applier(&pl, &opts.apply, err, sizeof(err)))
		goto error;
	if (!pipeline_prepare(&pl, opts.ring_size,
	                      opts.proto_version ? opts.proto_version
	                                         : replconn_max_proto_version(rc.server_version),
	                      err, sizeof(err)))
		goto error;
	start.slot = opts.slot;
	/* restart after what the target has (the slot may be behind it) */
	start.start_lsn = pl.app.progress_lsn;
	start.publications = opts.publications;
	start.messages = true;
	t0 = cli_now_ms();
	/* pg_replication_slot_advance is 11's */
	if (!opts.catch_up_stream && rc.server_version >= 110000)
	{
		catchup_opts co = {.source = opts.source,
		                   .slot = opts.slot,
		                   .publications = opts.publications,
		                   .messages = true,
		                   .endpos = opts.endpos,
		                   .chunk_bytes = opts.catch_up_chunk,
		                   .stop = &bench_interrupted};
		catchup_stats cs;

		switch (pipeline_catch_up(&pl, &co, &cs, err, sizeof(err)))
		{
			case CATCHUP_DONE:
				break;
			case CATCHUP_FAILED:
				goto error;
			case CATCHUP_STOPPED:
			case CATCHUP_ENDPOS:
				end = STREAM_ENDPOS;
				goto applied;
		}
		if (pl.app.durable_lsn > start.start_lsn)
			start.start_lsn = pl.app.durable_lsn;
	}
	if (!pipeline_stream(&pl, &rc, &start, opts.status_interval_ms, 0, err, sizeof(err)))
		goto error;
	so.endpos = opts.endpos;
	so.stop = &bench_interrupted;
	end = pipeline_apply(&pl, &so, err, sizeof(err));
applied:
	if (end == STREAM_FAILED || (end == STREAM_CLOSED && err[0]))
		goto error;
	if (end == STREAM_CLOSED)
	{
		snprintf(err, sizeof(err), "the source ended the replication stream before --endpos");
		goto error;
	}
	if (pl.rcv.started && !pipeline_stop(&pl, err, sizeof(err)))
		goto error;
	bench_report(
	    &opts, &pl.app, atomic_load(&pl.rcv.handovers), (double)(cli_now_ms() - t0) / 1000.0,
	    slot.consistent_point > pl.app.progress_lsn ? slot.consistent_point : pl.app.progress_lsn,
	    pl.app.committed_lsn);
	ok = true;
error:
	/* on a failed path, the receiver thread's own error if the run failed because of it */
	pipeline_close(&pl, &rc, ok ? NULL : err, sizeof(err));
	if (!ok)
		fprintf(stderr, "pg_dbmigrator bench: %s\n", err);
	return ok ? EXIT_OK : EXIT_ERROR;
}
