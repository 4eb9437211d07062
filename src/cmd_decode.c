/*
 * cmd_decode.c — `pg_dbmigrator decode`: print the decoded stream of a slot,
 * like pg_recvlogical, through our own replication client and decoder.
 *
 * The slot's backlog is read through SQL first (catchup.h, unless
 * --catch-up stream), then the stream takes over from where that ended.
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

#include "catchup.h"
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
	bool catch_up_stream;  /* --catch-up stream: no SQL catch-up before streaming */
	size_t catch_up_chunk; /* --catch-up-chunk: WAL per SQL chunk; 0: the default */
} decode_opts;

/* One run's state. */
typedef struct decode_run
{
	decode_opts *opts;   /* borrowed */
	relcache *cache;     /* borrowed: the pipeline's */
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
	       "  --catch-up MODE        sql (default): read the slot's backlog through SQL\n"
	       "                         (pg_logical_slot_peek_binary_changes), then stream;\n"
	       "                         stream: the replication stream only\n"
	       "  --catch-up-chunk SIZE  WAL read per SQL chunk (default 256MB): the source\n"
	       "                         decodes a chunk before it sends its first change\n"
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
		OPT_CATCHUP,
		OPT_CATCHUP_CHUNK,
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
	    {"catch-up", required_argument, NULL, OPT_CATCHUP},
	    {"catch-up-chunk", required_argument, NULL, OPT_CATCHUP_CHUNK},
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
			case OPT_CATCHUP:
				if (strcmp(optarg, "sql") != 0 && strcmp(optarg, "stream") != 0)
				{
					fprintf(stderr,
					        "pg_dbmigrator decode: invalid --catch-up \"%s\": use sql or stream\n",
					        optarg);
					return false;
				}
				o->catch_up_stream = strcmp(optarg, "stream") == 0;
				break;
			case OPT_CATCHUP_CHUNK:
				if (!cli_parse_size(optarg, &o->catch_up_chunk) || o->catch_up_chunk < 64 * 1024)
				{
					fprintf(stderr,
					        "pg_dbmigrator decode: invalid --catch-up-chunk \"%s\": use a size "
					        "of at least 64kB, such as 256MB\n",
					        optarg);
					return false;
				}
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

/* Write out what is buffered; with sync, fsync a file if it holds something unacknowledged. */
static bool
decode_write_out(decode_run *run, bool sync, char *errbuf, size_t errlen)
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
	if (sync && run->fd_is_file && run->pending_ack > run->acked && fsync(run->fd) != 0)
	{
		snprintf(errbuf, errlen, "could not fsync %s: %s", run->opts->output, strerror(errno));
		return false;
	}
	return true;
}

/* Write out what is buffered, fsync a file, then acknowledge it. */
static bool
decode_flush(decode_run *run, receiver *rcv, char *errbuf, size_t errlen)
{
	if (!decode_write_out(run, true, errbuf, errlen))
		return false;
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

/* ---- the SQL catch-up's sink: print, write out, fsync ---- */

static bool
decode_sink_message(void *arg, pgo_message *msg, pgo_lsn lsn, size_t len, char *errbuf,
                    size_t errlen)
{
	decode_run *run = arg;

	(void)len;
	if (!decodefmt_handle(&run->out, run->opts->format, msg, lsn, run->cache, errbuf, errlen))
		return false;
	if (msg->type == PGO_MSG_COMMIT)
		run->pending_ack = msg->u.commit.end_lsn;
	/* written as it comes; fsync'd (and the slot advanced) at the end of each chunk */
	return strbuf_len(&run->out) < DECODE_FLUSH_BYTES ||
	       decode_write_out(run, false, errbuf, errlen);
}

static bool
decode_sink_settle(void *arg, bool wait, pgo_lsn *kept, char *errbuf, size_t errlen)
{
	decode_run *run = arg;

	(void)wait; /* a write and an fsync: always kept at once */
	if (!decode_write_out(run, true, errbuf, errlen))
		return false;
	run->acked = run->pending_ack;
	*kept = run->acked;
	return true;
}

/*
 * Print the slot's backlog read through SQL (see catchup.h): the walsender
 * makes a system call per WAL record it reads, and on a backlog of small
 * changes that, not the printing, sets the pace. The slot is advanced to
 * what is written out (and fsync'd), as the stream acknowledges it.
 */
static catchup_end
decode_catch_up(decode_run *run, pipeline *pl, int proto_version, char *errbuf, size_t errlen)
{
	catchup_opts co = {.source = run->opts->source,
	                   .slot = run->opts->slot,
	                   .publications = run->opts->publications,
	                   .proto_version = proto_version,
	                   .messages = true,
	                   .endpos = run->opts->endpos,
	                   .chunk_bytes = run->opts->catch_up_chunk,
	                   .stop = &decode_interrupted};
	catchup_sink sink = {.arg = run, .message = decode_sink_message, .settle = decode_sink_settle};
	catchup_stats st;
	int64_t t0 = cli_now_ms();
	catchup_end end = catchup_run_sink(&co, &pl->sd.dec, &sink, &st, errbuf, errlen);

	if (st.messages > 0)
	{
		char lsn[PGO_LSN_STRLEN], mode[64];

		fprintf(stderr,
		        "pg_dbmigrator decode: read the backlog through SQL: %llu messages (%.1f MB) in "
		        "%llu chunk%s%s, %.1f s, up to %s\n",
		        (unsigned long long)st.messages, (double)st.bytes / (1024.0 * 1024.0),
		        (unsigned long long)st.chunks, st.chunks == 1 ? "" : "s",
		        catchup_mode_text(&st, mode, sizeof(mode)), (double)(cli_now_ms() - t0) / 1000.0,
		        pgo_lsn_format(run->acked, lsn));
	}
	return end;
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
	int proto;
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
	proto = opts.proto_version ? opts.proto_version : replconn_max_proto_version(rc.server_version);
	if (!pipeline_prepare(&pl, opts.ring_size, proto, err, sizeof(err)))
		goto error;
	run.cache = &pl.cache;
	/*
	 * The backlog through SQL first: not from a --start of the user's (the
	 * SQL functions read from the slot's position), nor from a new slot (no
	 * backlog), nor before 11 (no pg_replication_slot_advance).
	 */
	if (!opts.catch_up_stream && !opts.create_slot && opts.start == 0 &&
	    rc.server_version >= 110000)
	{
		switch (decode_catch_up(&run, &pl, proto, err, sizeof(err)))
		{
			case CATCHUP_DONE:
				break;
			case CATCHUP_FAILED:
				goto error;
			case CATCHUP_STOPPED:
				fprintf(stderr, "pg_dbmigrator decode: interrupted, stopping\n");
				goto done;
			case CATCHUP_ENDPOS:
				goto done;
		}
		if (decode_interrupted)
		{
			fprintf(stderr, "pg_dbmigrator decode: interrupted, stopping\n");
			goto done;
		}
	}
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
done:
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
