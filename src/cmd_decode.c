/*
 * cmd_decode.c — `pg_dbmigrator decode`: print the decoded stream of a slot,
 * like pg_recvlogical, through our own replication client and decoder.
 *
 * Owns: the output file and the pipeline (ring, relation cache, decoder
 * state, receiver: see pipeline.h) of one run. The receiver thread owns the connection while streaming.
 * Never: acknowledges a transaction before its lines are written out (and
 * fsync'd when the output is a file), prints anything past --endpos, or
 * exits without telling why.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "decodefmt.h"
#include "pgoutput.h"
#include "pipeline.h"
#include "receiver.h"
#include "relcache.h"
#include "replconn.h"
#include "ring.h"
#include "strbuf.h"

#define DECODE_FLUSH_BYTES      (1024 * 1024)
#define DECODE_FLUSH_MS         200
#define DECODE_MAX_PUBLICATIONS 64

typedef struct decode_opts
{
	const char *source;                                    /* borrowed: argv or environment */
	const char *slot;                                      /* borrowed */
	const char *publications[DECODE_MAX_PUBLICATIONS + 1]; /* borrowed, NULL-terminated */
	int npublications;
	bool create_slot;
	bool drop_slot;
	pgo_lsn start;
	pgo_lsn endpos;     /* 0: none */
	const char *output; /* borrowed; "-" is stdout */
	decodefmt_format format;
	int proto_version; /* 0: highest the server supports */
	size_t ring_size;
	int status_interval_ms;
} decode_opts;

/* One run's state. */
typedef struct decode_run
{
	decode_opts *opts;   /* borrowed */
	int fd;              /* output; owned unless it is stdout */
	bool fd_is_file;     /* regular file: fsync before acknowledging */
	strbuf out;          /* owned: lines not yet written */
	pgo_lsn pending_ack; /* end LSN of the last transaction in out */
	pgo_lsn acked;       /* what the receiver reports as flushed */
	int64_t last_flush_ms;
	bool in_txn;
} decode_run;

static volatile sig_atomic_t decode_interrupted = 0;

/* SIGINT/SIGTERM: stop at the next message boundary. */
static void
decode_on_signal(int sig)
{
	(void)sig;
	decode_interrupted = 1;
}

/* Print decode's usage to f. */
static void
decode_usage(FILE *f)
{
	fprintf(
	    f, "pg_dbmigrator decode prints the changes of a logical replication slot, decoded\n"
	       "by pg_dbmigrator's own pgoutput client (like pg_recvlogical).\n"
	       "\n"
	       "Usage:\n"
	       "  pg_dbmigrator decode --source CONNSTR --slot-name NAME --publication NAME [options]\n"
	       "\n"
	       "Options:\n"
	       "  --source CONNSTR       source connection string or URI (or PG_DBMIGRATOR_SOURCE)\n"
	       "  --slot-name NAME       logical replication slot (pgoutput)\n"
	       "  --publication NAME     publication to stream (repeatable)\n"
	       "  --create-slot          create the slot first (error if it exists)\n"
	       "  --drop-slot            drop the slot when done\n"
	       "  --start LSN            start position (default: the slot's confirmed position)\n"
	       "  --endpos LSN           stop after the last transaction committed at or before LSN\n"
	       "  --output FILE|-        where to write (default -, standard output); a file is\n"
	       "                         appended to and fsync'd before each acknowledgement\n"
	       "  --format text|json     one line per message (default text)\n"
	       "  --proto-version N      pgoutput protocol version (default: highest supported)\n"
	       "  --ring-size SIZE       buffer between receiver and printer (default 64MB)\n"
	       "  --status-interval SECS standby status update interval (default 10)\n"
	       "  --help                 show this help\n"
	       "\n"
	       "Only what has been written out is acknowledged to the source. Ctrl+C stops cleanly.\n");
}

/* Parse argv into opts; prints one error line and returns false on bad usage. */
static bool
decode_parse_args(int argc, char **argv, decode_opts *o, bool *help)
{
	enum
	{
		OPT_SOURCE = 256,
		OPT_SLOT,
		OPT_PUB,
		OPT_CREATE,
		OPT_DROP,
		OPT_START,
		OPT_ENDPOS,
		OPT_OUTPUT,
		OPT_FORMAT,
		OPT_PROTO,
		OPT_RING,
		OPT_STATUS,
		OPT_HELP
	};
	static const struct option longopts[] = {
	    {"source", required_argument, NULL, OPT_SOURCE},
	    {"slot-name", required_argument, NULL, OPT_SLOT},
	    {"slot", required_argument, NULL, OPT_SLOT},
	    {"publication", required_argument, NULL, OPT_PUB},
	    {"create-slot", no_argument, NULL, OPT_CREATE},
	    {"drop-slot", no_argument, NULL, OPT_DROP},
	    {"start", required_argument, NULL, OPT_START},
	    {"endpos", required_argument, NULL, OPT_ENDPOS},
	    {"output", required_argument, NULL, OPT_OUTPUT},
	    {"format", required_argument, NULL, OPT_FORMAT},
	    {"proto-version", required_argument, NULL, OPT_PROTO},
	    {"ring-size", required_argument, NULL, OPT_RING},
	    {"status-interval", required_argument, NULL, OPT_STATUS},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0}};
	int c;
	int secs;
	char err[512];

	memset(o, 0, sizeof(*o));
	o->output = "-";
	o->format = DECODEFMT_TEXT;
	o->ring_size = 64 * 1024 * 1024;
	o->status_interval_ms = 10000;
	*help = false;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case OPT_SOURCE:
				o->source = optarg;
				break;
			case OPT_SLOT:
				o->slot = optarg;
				break;
			case OPT_PUB:
				if (o->npublications == DECODE_MAX_PUBLICATIONS)
				{
					fprintf(stderr, "pg_dbmigrator decode: at most %d --publication options\n",
					        DECODE_MAX_PUBLICATIONS);
					return false;
				}
				o->publications[o->npublications++] = optarg;
				break;
			case OPT_CREATE:
				o->create_slot = true;
				break;
			case OPT_DROP:
				o->drop_slot = true;
				break;
			case OPT_START:
			case OPT_ENDPOS:
				if (!pgo_lsn_parse(optarg, c == OPT_START ? &o->start : &o->endpos))
				{
					fprintf(stderr,
					        "pg_dbmigrator decode: invalid LSN \"%s\" for --%s: expected the form "
					        "16/B374D848\n",
					        optarg, c == OPT_START ? "start" : "endpos");
					return false;
				}
				break;
			case OPT_OUTPUT:
				o->output = optarg;
				break;
			case OPT_FORMAT:
				if (strcmp(optarg, "text") == 0)
					o->format = DECODEFMT_TEXT;
				else if (strcmp(optarg, "json") == 0)
					o->format = DECODEFMT_JSON;
				else
				{
					fprintf(stderr,
					        "pg_dbmigrator decode: invalid --format \"%s\": use text or json\n",
					        optarg);
					return false;
				}
				break;
			case OPT_PROTO:
				if (!cli_parse_int(optarg, PGO_PROTO_VERSION_MIN, PGO_PROTO_VERSION_MAX,
				                   &o->proto_version))
				{
					fprintf(stderr,
					        "pg_dbmigrator decode: invalid --proto-version \"%s\": use %d to %d\n",
					        optarg, PGO_PROTO_VERSION_MIN, PGO_PROTO_VERSION_MAX);
					return false;
				}
				break;
			case OPT_RING:
				if (!cli_parse_size(optarg, &o->ring_size) || o->ring_size < 64 * 1024)
				{
					fprintf(stderr,
					        "pg_dbmigrator decode: invalid --ring-size \"%s\": use a size of at "
					        "least 64kB, such as 64MB\n",
					        optarg);
					return false;
				}
				break;
			case OPT_STATUS:
				if (!cli_parse_int(optarg, 1, 3600, &secs))
				{
					fprintf(stderr,
					        "pg_dbmigrator decode: invalid --status-interval \"%s\": use 1 to 3600 "
					        "seconds\n",
					        optarg);
					return false;
				}
				o->status_interval_ms = secs * 1000;
				break;
			case OPT_HELP:
				*help = true;
				return true;
			default:
				if (optopt)
					fprintf(stderr,
					        "pg_dbmigrator decode: option needs a value or is unknown: %s\n",
					        argv[optind - 1]);
				else
					fprintf(stderr, "pg_dbmigrator decode: unknown option \"%s\"\n",
					        argv[optind - 1]);
				fprintf(stderr, "Try \"pg_dbmigrator decode --help\".\n");
				return false;
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "pg_dbmigrator decode: unexpected argument \"%s\"\n", argv[optind]);
		return false;
	}
	if (o->source == NULL)
		o->source = getenv("PG_DBMIGRATOR_SOURCE");
	if (o->source == NULL || o->slot == NULL || o->npublications == 0)
	{
		fprintf(stderr,
		        "pg_dbmigrator decode: %s is required\nTry \"pg_dbmigrator decode --help\".\n",
		        o->source == NULL ? "--source (or PG_DBMIGRATOR_SOURCE)"
		        : o->slot == NULL ? "--slot-name"
		                          : "--publication");
		return false;
	}
	if (!replconn_check_conninfo(o->source, err, sizeof(err)) ||
	    !replconn_valid_slot_name(o->slot, err, sizeof(err)))
	{
		fprintf(stderr, "pg_dbmigrator decode: %s\n", err);
		return false;
	}
	if (o->endpos && o->start && o->endpos < o->start)
	{
		fprintf(stderr, "pg_dbmigrator decode: --endpos is before --start\n");
		return false;
	}
	return true;
}

/* Write out what is buffered, fsync a file, then acknowledge it. */
static bool
decode_flush(decode_run *run, receiver *rcv, char *errbuf, size_t errlen)
{
	const char *p = strbuf_data(&run->out);
	size_t left = strbuf_len(&run->out);

	while (left > 0)
	{
		ssize_t n = write(run->fd, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
		{
			snprintf(errbuf, errlen, "could not write to %s: %s", run->opts->output,
			         strerror(errno));
			return false;
		}
		p += n;
		left -= (size_t)n;
	}
	strbuf_reset(&run->out);
	if (run->fd_is_file && run->pending_ack > run->acked && fsync(run->fd) != 0)
	{
		snprintf(errbuf, errlen, "could not fsync %s: %s", run->opts->output, strerror(errno));
		return false;
	}
	if (run->pending_ack > run->acked)
	{
		receiver_set_flush(rcv, run->pending_ack);
		run->acked = run->pending_ack;
	}
	run->last_flush_ms = cli_now_ms();
	return true;
}

/* Load type names (format_type) so columns print as id[integer]. */
static bool
decode_load_types(replconn *rc, relcache *cache, char *errbuf, size_t errlen)
{
	PGresult *res = PQexec(rc->conn, "SELECT oid, pg_catalog.format_type(oid, NULL) FROM "
	                                 "pg_catalog.pg_type");
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		snprintf(errbuf, errlen, "could not read type names from the source: %s",
		         PQerrorMessage(rc->conn));
	for (int i = 0; ok && i < PQntuples(res); i++)
		ok = relcache_set_type_name(cache, (pgo_oid)strtoul(PQgetvalue(res, i, 0), NULL, 10),
		                            PQgetvalue(res, i, 1), errbuf, errlen);
	PQclear(res);
	return ok;
}

/* Open the output: stdout for "-", else a file appended to, mode 0600. */
static bool
decode_open_output(decode_run *run, char *errbuf, size_t errlen)
{
	struct stat st;

	if (strcmp(run->opts->output, "-") == 0)
		run->fd = STDOUT_FILENO;
	else
	{
		run->fd = open(run->opts->output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (run->fd < 0)
		{
			snprintf(errbuf, errlen, "could not open output file \"%s\": %s", run->opts->output,
			         strerror(errno));
			return false;
		}
	}
	run->fd_is_file = fstat(run->fd, &st) == 0 && S_ISREG(st.st_mode);
	return true;
}

/* What the main loop decided after one ring record. */
typedef enum decode_step
{
	DECODE_CONTINUE,
	DECODE_DONE, /* --endpos reached */
	DECODE_FAILED
} decode_step;

/* Handle one XLogData record: decode, check --endpos, format. */
static decode_step
decode_handle_message(decode_run *run, pgo_decoder *dec, relcache *cache, const ring_record *rec,
                      char *errbuf, size_t errlen)
{
	pgo_message msg;
	char line[512];

	if (pgo_decode(dec, rec->data, rec->len - 1, &msg) != PGO_ERR_OK)
	{
		char lsn[PGO_LSN_STRLEN];

		pgo_error_format(&dec->error, line, sizeof(line));
		snprintf(errbuf, errlen, "could not decode the message at %s: %s",
		         pgo_lsn_format(rec->tag, lsn), line);
		return DECODE_FAILED;
	}
	if (msg.type == PGO_MSG_BEGIN)
	{
		/* transactions arrive in commit order: the first one past endpos ends the run */
		if (run->opts->endpos && msg.u.begin.final_lsn > run->opts->endpos)
			return DECODE_DONE;
		run->in_txn = true;
	}
	if (!decodefmt_handle(&run->out, run->opts->format, &msg, rec->tag, cache, errbuf, errlen))
		return DECODE_FAILED;
	if (msg.type == PGO_MSG_COMMIT)
	{
		run->in_txn = false;
		run->pending_ack = msg.u.commit.end_lsn;
	}
	return DECODE_CONTINUE;
}

/* The consumer loop: until endpos, Ctrl+C, or the stream fails. */
static bool
decode_loop(decode_run *run, receiver *rcv, ring *rg, pgo_decoder *dec, relcache *cache,
            char *errbuf, size_t errlen)
{
	for (;;)
	{
		ring_record rec;
		ring_status st;
		decode_step step = DECODE_CONTINUE;

		if (decode_interrupted)
		{
			fprintf(stderr, "pg_dbmigrator decode: interrupted, stopping\n");
			return decode_flush(run, rcv, errbuf, errlen);
		}
		st = ring_peek(rg, DECODE_FLUSH_MS / 2, &rec);
		if (st == RING_TIMEOUT)
		{
			/* idle: write out what is pending so it can be acknowledged */
			if (strbuf_len(&run->out) > 0 || run->pending_ack > run->acked)
				if (!decode_flush(run, rcv, errbuf, errlen))
					return false;
			continue;
		}
		if (st != RING_OK)
		{
			/* the receiver closed the ring: it failed, or it was stopped */
			if (!decode_flush(run, rcv, errbuf, errlen))
				return false;
			return receiver_stop(rcv, errbuf, errlen);
		}
		if (rec.kind == RECEIVER_REC_KEEPALIVE)
		{
			/* nothing in flight: the server's WAL end may be acknowledged (capped at endpos) */
			pgo_lsn wal_end = rec.tag;

			if (run->opts->endpos && wal_end > run->opts->endpos)
				wal_end = run->opts->endpos;
			if (!run->in_txn && strbuf_len(&run->out) == 0 && wal_end > run->pending_ack)
				run->pending_ack = wal_end;
			if (!run->in_txn && run->opts->endpos && rec.tag >= run->opts->endpos)
				step = DECODE_DONE;
		}
		else
			step = decode_handle_message(run, dec, cache, &rec, errbuf, errlen);
		ring_release(rg, &rec);
		if (step == DECODE_FAILED)
			return false;
		if (step == DECODE_DONE)
			return decode_flush(run, rcv, errbuf, errlen);
		if (strbuf_len(&run->out) >= DECODE_FLUSH_BYTES ||
		    cli_now_ms() - run->last_flush_ms >= DECODE_FLUSH_MS)
			if (!decode_flush(run, rcv, errbuf, errlen))
				return false;
	}
}

/* Connect, create or find the slot, load type names. */
static bool
decode_connect(decode_opts *o, replconn *rc, relcache *cache, char *errbuf, size_t errlen)
{
	replslot slot;
	bool found;

	if (!replconn_open(rc, o->source, errbuf, errlen))
		return false;
	if (!replconn_find_slot(rc, o->slot, &found, &slot, errbuf, errlen))
		return false;
	if (o->create_slot && found)
	{
		snprintf(errbuf, errlen,
		         "replication slot \"%s\" already exists: drop --create-slot to read from it, or "
		         "choose another --slot-name",
		         o->slot);
		return false;
	}
	if (!o->create_slot && !found)
	{
		snprintf(errbuf, errlen,
		         "replication slot \"%s\" does not exist on the source: add --create-slot to "
		         "create it",
		         o->slot);
		return false;
	}
	if (o->create_slot && !replconn_create_slot(rc, o->slot, false, &slot, errbuf, errlen))
		return false;
	return decode_load_types(rc, cache, errbuf, errlen);
}

/* Drop the slot after the stream ended (the connection is back in command mode). */
static bool
decode_drop_slot(decode_opts *o, replconn *rc, char *errbuf, size_t errlen)
{
	PGresult *res;

	/* finish any result of the ended COPY before the next command */
	while ((res = PQgetResult(rc->conn)) != NULL)
		PQclear(res);
	return replconn_drop_slot(rc, o->slot, errbuf, errlen);
}

int
cmd_decode(int argc, char **argv)
{
	decode_opts opts;
	decode_run run = {0};
	replconn rc = {0};
	replstart start = {0};
	static pipeline pl; /* big: the decoder's column storage */
	struct sigaction sa;
	bool help;
	bool ok = false;
	char err[2048] = "";

	if (!decode_parse_args(argc, argv, &opts, &help))
		return EXIT_USAGE;
	if (help)
	{
		decode_usage(stdout);
		return EXIT_OK;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = decode_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	run.opts = &opts;
	run.fd = -1;
	strbuf_init(&run.out);
	if (!pipeline_init(&pl, NULL, err, sizeof(err)))
		goto error;
	if (!decode_open_output(&run, err, sizeof(err)))
		goto error;
	if (!decode_connect(&opts, &rc, &pl.cache, err, sizeof(err)))
		goto error;
	/* the protocol version is checked by decode_parse_args, or the server's highest */
	if (!pipeline_prepare(&pl, opts.ring_size,
	                      opts.proto_version ? opts.proto_version
	                                         : replconn_max_proto_version(rc.server_version),
	                      err, sizeof(err)))
		goto error;
	start.slot = opts.slot;
	start.start_lsn = opts.start;
	start.publications = opts.publications;
	start.messages = true;
	if (!pipeline_stream(&pl, &rc, &start, opts.status_interval_ms, 0, err, sizeof(err)))
		goto error;
	run.last_flush_ms = cli_now_ms();
	if (!decode_loop(&run, &pl.rcv, &pl.ring, &pl.sd.dec, &pl.cache, err, sizeof(err)))
		goto error;
	if (!pipeline_stop(&pl, err, sizeof(err)))
		goto error;
	if (opts.drop_slot && !decode_drop_slot(&opts, &rc, err, sizeof(err)))
		goto error;
	ok = true;
error:
	/* on a failed path, the receiver thread's own error if the run failed because of it */
	pipeline_close(&pl, &rc, ok ? NULL : err, sizeof(err));
	if (!ok)
		fprintf(stderr, "pg_dbmigrator decode: %s\n", err);
	strbuf_free(&run.out);
	if (run.fd > STDOUT_FILENO)
		close(run.fd);
	return ok ? EXIT_OK : EXIT_ERROR;
}
