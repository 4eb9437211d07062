/*
 * pgoutput.h — libpgoutput, the bundled decoder of PostgreSQL's pgoutput
 * logical replication protocol (versions 1 to 4) and of the CopyBoth framing
 * of the streaming replication protocol ('w', 'k', 'r').
 *
 * Owns: nothing. Every string and column value in a decoded message is a
 * view (pointer + length) into the caller's input buffer and is valid exactly
 * as long as that buffer is. Column and relation-attribute arrays live in
 * storage the caller hands to pgo_decoder_init().
 *
 * Never: allocates, logs, does I/O, reads the clock, or links libpq. Never
 * reads outside [buf, buf + len). Malformed input is an error code with the
 * byte offset and a readable reason, never a crash, never a skipped byte.
 */
#ifndef PGOUTPUT_H
#define PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define PGO_MUSTCHECK __attribute__((warn_unused_result))
#else
#define PGO_MUSTCHECK
#endif

typedef uint64_t pgo_lsn;      /* XLogRecPtr */
typedef int64_t pgo_timestamp; /* microseconds since 2000-01-01 00:00 UTC */
typedef uint32_t pgo_xid;      /* TransactionId */
typedef uint32_t pgo_oid;      /* Oid */

#define PGO_PROTO_VERSION_MIN 1
#define PGO_PROTO_VERSION_MAX 4

/* Seconds between the Unix epoch and the PostgreSQL epoch (2000-01-01). */
#define PGO_EPOCH_OFFSET_SECS INT64_C(946684800)

/*
 * Error codes and their readable reasons, one table (libuv's UV_ERRNO_MAP).
 */
#define PGO_ERRNO_MAP(X)                                                     \
	X(OK, "no error")                                                        \
	X(INVALID_ARGUMENT, "invalid argument")                                  \
	X(EMPTY, "empty message")                                                \
	X(TOO_LARGE, "message larger than the configured limit")                 \
	X(TRUNCATED, "message ends inside a field")                              \
	X(TRAILING_DATA, "bytes left over after the end of the message")         \
	X(UNKNOWN_MESSAGE, "unknown message type")                               \
	X(PROTO_VERSION, "message not valid in the negotiated protocol version") \
	X(STREAM_STATE, "message out of order with stream start/stop")           \
	X(BAD_FLAGS, "unknown flag bits")                                        \
	X(BAD_STRING, "string not NUL-terminated inside the message")            \
	X(BAD_LENGTH, "negative length")                                         \
	X(BAD_COUNT, "negative count")                                           \
	X(TOO_MANY_COLUMNS, "more columns than the configured limit")            \
	X(COLUMN_COUNT_MISMATCH, "column count disagrees with the relation")     \
	X(BAD_COLUMN_KIND, "unknown tuple column kind")                          \
	X(BAD_TUPLE_MARKER, "unexpected tuple marker")                           \
	X(BAD_REPLICA_IDENTITY, "unknown replica identity")                      \
	X(INVALID_LSN, "required LSN is zero")                                   \
	X(UNKNOWN_COPY_MESSAGE, "unknown replication CopyData message type")

typedef enum pgo_err
{
#define PGO__ERR_ENUM(name, reason) PGO_ERR_##name,
	PGO_ERRNO_MAP(PGO__ERR_ENUM)
#undef PGO__ERR_ENUM
	    PGO_ERR__COUNT
} pgo_err;

/*
 * Where and why decoding failed. Filled only on failure; all of it is plain
 * data the caller may copy. detail is NUL-terminated and says which field.
 */
typedef struct pgo_error
{
	pgo_err code;
	size_t offset;   /* byte offset of the failing field in the message */
	char msgtype;    /* message type byte, or 0 if the message was empty */
	char detail[96]; /* e.g. "column 3 value: need 1000 bytes, 12 left" */
} pgo_error;

/* Message types, as the tag byte on the wire (PostgreSQL's logicalproto.h). */
typedef enum pgo_msgtype
{
	PGO_MSG_BEGIN = 'B',
	PGO_MSG_COMMIT = 'C',
	PGO_MSG_ORIGIN = 'O',
	PGO_MSG_RELATION = 'R',
	PGO_MSG_TYPE = 'Y',
	PGO_MSG_INSERT = 'I',
	PGO_MSG_UPDATE = 'U',
	PGO_MSG_DELETE = 'D',
	PGO_MSG_TRUNCATE = 'T',
	PGO_MSG_MESSAGE = 'M',
	PGO_MSG_STREAM_START = 'S',
	PGO_MSG_STREAM_STOP = 'E',
	PGO_MSG_STREAM_COMMIT = 'c',
	PGO_MSG_STREAM_ABORT = 'A',
	PGO_MSG_BEGIN_PREPARE = 'b',
	PGO_MSG_PREPARE = 'P',
	PGO_MSG_COMMIT_PREPARED = 'K',
	PGO_MSG_ROLLBACK_PREPARED = 'r',
	PGO_MSG_STREAM_PREPARE = 'p'
} pgo_msgtype;

/* Tuple column kinds. */
typedef enum pgo_colkind
{
	PGO_COL_NULL = 'n',
	PGO_COL_UNCHANGED = 'u', /* unchanged TOASTed value, not sent */
	PGO_COL_TEXT = 't',
	PGO_COL_BINARY = 'b'
} pgo_colkind;

/* Replica identity of a relation (pg_class.relreplident). */
typedef enum pgo_replident
{
	PGO_REPLIDENT_DEFAULT = 'd',
	PGO_REPLIDENT_NOTHING = 'n',
	PGO_REPLIDENT_FULL = 'f',
	PGO_REPLIDENT_INDEX = 'i'
} pgo_replident;

#define PGO_RELCOL_KEY                0x01 /* column is part of the replica identity */
#define PGO_TRUNCATE_CASCADE          0x01 /* TRUNCATE ... CASCADE */
#define PGO_TRUNCATE_RESTART_IDENTITY 0x02 /* TRUNCATE ... RESTART IDENTITY */
#define PGO_MESSAGE_TRANSACTIONAL     0x01 /* pg_logical_emit_message(true, ...) */

/* A NUL-terminated string inside the input buffer. */
typedef struct pgo_str
{
	const char *ptr; /* borrowed from the input; ptr[len] == '\0' */
	size_t len;
} pgo_str;

/* One column value of a tuple. */
typedef struct pgo_value
{
	const char *data; /* borrowed from the input, NOT NUL-terminated; NULL for 'n'/'u' */
	uint32_t len;     /* 0 for 'n'/'u' */
	char kind;        /* pgo_colkind */
} pgo_value;

typedef struct pgo_tuple
{
	uint16_t ncols;
	pgo_value *cols; /* borrowed: the decoder's caller-provided storage */
} pgo_tuple;

/* One attribute of a Relation message. */
typedef struct pgo_relcol
{
	uint8_t flags; /* PGO_RELCOL_KEY */
	pgo_str name;  /* borrowed from the input */
	pgo_oid type_oid;
	int32_t typmod;
} pgo_relcol;

typedef struct pgo_begin
{
	pgo_lsn final_lsn; /* LSN of the commit record */
	pgo_timestamp commit_time;
	pgo_xid xid;
} pgo_begin;

typedef struct pgo_commit
{
	uint8_t flags; /* always 0 */
	pgo_lsn commit_lsn;
	pgo_lsn end_lsn; /* end of the commit record: what feedback acknowledges */
	pgo_timestamp commit_time;
} pgo_commit;

typedef struct pgo_origin
{
	pgo_lsn origin_lsn;
	pgo_str name;
} pgo_origin;

typedef struct pgo_relation
{
	pgo_oid relid;
	pgo_str nspname; /* empty string means pg_catalog */
	pgo_str relname;
	char replident; /* pgo_replident */
	uint16_t ncols;
	pgo_relcol *cols; /* borrowed: the decoder's caller-provided storage */
} pgo_relation;

typedef struct pgo_type
{
	pgo_oid oid;
	pgo_str nspname;
	pgo_str typname;
} pgo_type;

typedef struct pgo_insert
{
	pgo_oid relid;
	pgo_tuple newtup;
} pgo_insert;

typedef struct pgo_update
{
	pgo_oid relid;
	char old_kind;    /* 0 (no old tuple), 'K' (old key) or 'O' (old row, FULL) */
	pgo_tuple oldtup; /* ncols == 0 when old_kind == 0 */
	pgo_tuple newtup;
} pgo_update;

typedef struct pgo_delete
{
	pgo_oid relid;
	char old_kind; /* 'K' or 'O' */
	pgo_tuple oldtup;
} pgo_delete;

typedef struct pgo_truncate
{
	uint8_t options; /* PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY */
	uint32_t nrelids;
	const uint8_t *relids_raw; /* borrowed: nrelids big-endian Oids; read with pgo_truncate_relid */
} pgo_truncate;

typedef struct pgo_logical_message
{
	uint8_t flags; /* PGO_MESSAGE_TRANSACTIONAL */
	pgo_lsn lsn;
	pgo_str prefix;
	const char *content; /* borrowed from the input */
	uint32_t content_len;
} pgo_logical_message;

typedef struct pgo_stream_start
{
	pgo_xid xid;
	uint8_t first_segment; /* 1 on the first block of this transaction */
} pgo_stream_start;

typedef struct pgo_stream_commit
{
	pgo_xid xid;
	uint8_t flags; /* always 0 */
	pgo_lsn commit_lsn;
	pgo_lsn end_lsn;
	pgo_timestamp commit_time;
} pgo_stream_commit;

typedef struct pgo_stream_abort
{
	pgo_xid xid;
	pgo_xid subxid;
	bool has_abort_info; /* v4 with streaming = parallel: the two fields below */
	pgo_lsn abort_lsn;
	pgo_timestamp abort_time;
} pgo_stream_abort;

/* Begin Prepare ('b'): flags is absent on the wire and reads as 0. */
typedef struct pgo_prepare
{
	uint8_t flags;       /* always 0 */
	pgo_lsn prepare_lsn; /* Begin Prepare: the prepare LSN too */
	pgo_lsn end_lsn;
	pgo_timestamp prepare_time;
	pgo_xid xid;
	pgo_str gid;
} pgo_prepare;

typedef struct pgo_commit_prepared
{
	uint8_t flags; /* always 0 */
	pgo_lsn commit_lsn;
	pgo_lsn end_lsn;
	pgo_timestamp commit_time;
	pgo_xid xid;
	pgo_str gid;
} pgo_commit_prepared;

typedef struct pgo_rollback_prepared
{
	uint8_t flags; /* always 0 */
	pgo_lsn prepare_end_lsn;
	pgo_lsn rollback_end_lsn;
	pgo_timestamp prepare_time;
	pgo_timestamp rollback_time;
	pgo_xid xid;
	pgo_str gid;
} pgo_rollback_prepared;

/*
 * A decoded message. Valid until the next pgo_decode() on the same decoder
 * (the tuple arrays are reused) and while the input buffer lives.
 */
typedef struct pgo_message
{
	pgo_msgtype type;
	bool has_xid; /* streamed change: the xid below was on the wire */
	pgo_xid xid;  /* R, Y, I, U, D, T, M inside Stream Start/Stop */
	union
	{
		pgo_begin begin;
		pgo_commit commit;
		pgo_origin origin;
		pgo_relation relation;
		pgo_type type;
		pgo_insert insert;
		pgo_update update;
		pgo_delete del;
		pgo_truncate truncate;
		pgo_logical_message message;
		pgo_stream_start stream_start;
		pgo_stream_commit stream_commit;
		pgo_stream_abort stream_abort;
		pgo_prepare begin_prepare;  /* 'b' */
		pgo_prepare prepare;        /* 'P' */
		pgo_prepare stream_prepare; /* 'p' */
		pgo_commit_prepared commit_prepared;
		pgo_rollback_prepared rollback_prepared;
	} u;
} pgo_message;

/*
 * Expected column count of a relation, for the column-count check of Insert,
 * Update and Delete. Return -1 when the relation is unknown (no check).
 */
typedef int (*pgo_natts_fn)(void *arg, pgo_oid relid);

/* What the caller provides. Storage arrays need max_columns entries each. */
typedef struct pgo_config
{
	int proto_version;         /* 1..4, as sent in START_REPLICATION */
	uint32_t max_message_size; /* 0: no limit beyond the buffer */
	uint16_t max_columns;      /* 1..65535; 1664 covers any PostgreSQL table */
	pgo_value *old_cols;       /* borrowed: storage for old tuples */
	pgo_value *new_cols;       /* borrowed: storage for new tuples */
	pgo_relcol *rel_cols;      /* borrowed: storage for Relation attributes */
	pgo_natts_fn natts;        /* optional */
	void *natts_arg;
} pgo_config;

/* Decoder state. The caller allocates it (stack or struct member). */
typedef struct pgo_decoder
{
	pgo_config cfg;
	bool in_stream;  /* between Stream Start and Stream Stop */
	pgo_error error; /* the last failure */
} pgo_decoder;

/* Set up a decoder; PGO_ERR_INVALID_ARGUMENT if the config is unusable. */
PGO_MUSTCHECK pgo_err pgo_decoder_init(pgo_decoder *dec, const pgo_config *cfg);

/*
 * Decode one pgoutput message (the payload of an XLogData, or one row of
 * pg_logical_slot_get_binary_changes). On success fills *out and returns
 * PGO_ERR_OK; on failure returns the code, fills dec->error, and leaves the
 * decoder's stream state as it was (*out is then unspecified).
 */
PGO_MUSTCHECK pgo_err pgo_decode(pgo_decoder *dec, const void *buf, size_t len, pgo_message *out);

/* Relation i (0-based, < nrelids) of a Truncate message. */
pgo_oid pgo_truncate_relid(const pgo_truncate *t, uint32_t i);

/* Short reason for an error code ("message ends inside a field"). */
const char *pgo_strerror(pgo_err code);
/* Symbolic name of an error code ("TRUNCATED"). */
const char *pgo_errname(pgo_err code);
/* Name of a message type ("Insert"), or "unknown". */
const char *pgo_msgtype_name(int type);

/*
 * One readable line for an error:
 *   "Insert message, byte 17: message ends inside a field (column 2 value: need 9 bytes, 3 left)"
 * Returns what snprintf returns.
 */
int pgo_error_format(const pgo_error *err, char *buf, size_t size);

/* ---- CopyBoth framing of START_REPLICATION ---- */

#define PGO_COPY_XLOGDATA        'w'
#define PGO_COPY_KEEPALIVE       'k'
#define PGO_COPY_STATUS_UPDATE   'r'
#define PGO_XLOGDATA_HEADER_SIZE 25 /* 'w' + 3 x Int64 */
#define PGO_KEEPALIVE_SIZE       18 /* 'k' + 2 x Int64 + Byte1 */
#define PGO_STATUS_UPDATE_SIZE   34 /* 'r' + 4 x Int64 + Byte1 */

typedef struct pgo_xlogdata
{
	pgo_lsn data_start; /* WAL start of this message's data */
	pgo_lsn wal_end;    /* current end of WAL on the server */
	pgo_timestamp send_time;
	const uint8_t *data; /* borrowed: the pgoutput message */
	size_t len;
} pgo_xlogdata;

typedef struct pgo_keepalive
{
	pgo_lsn wal_end;
	pgo_timestamp send_time;
	bool reply_requested;
} pgo_keepalive;

typedef struct pgo_copymsg
{
	char type; /* PGO_COPY_XLOGDATA or PGO_COPY_KEEPALIVE */
	union
	{
		pgo_xlogdata xlog;
		pgo_keepalive keepalive;
	} u;
} pgo_copymsg;

/* Parse one CopyData payload from the walsender. */
PGO_MUSTCHECK pgo_err pgo_copy_parse(const void *buf, size_t len, pgo_copymsg *out, pgo_error *err);

/*
 * Write a standby status update ('r') into out; returns PGO_STATUS_UPDATE_SIZE.
 * write/flush/apply are the positions to report, now the client's clock in
 * PostgreSQL-epoch microseconds.
 */
size_t pgo_copy_build_status(uint8_t out[PGO_STATUS_UPDATE_SIZE], pgo_lsn write, pgo_lsn flush,
                             pgo_lsn apply, pgo_timestamp now, bool reply_requested);

/* ---- LSN text form ("16/B374D848") ---- */

#define PGO_LSN_STRLEN 18 /* "FFFFFFFF/FFFFFFFF" + NUL */

/* Format lsn into buf; returns buf. */
char *pgo_lsn_format(pgo_lsn lsn, char buf[PGO_LSN_STRLEN]);
/* Parse "X/X"; false on anything else (no trailing garbage, no sign). */
PGO_MUSTCHECK bool pgo_lsn_parse(const char *text, pgo_lsn *out);

#endif /* PGOUTPUT_H */
