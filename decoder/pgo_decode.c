/*
 * pgo_decode.c — decodes one pgoutput message (protocol versions 1 to 4)
 * into a pgo_message of views over the input.
 *
 * Owns: the decoder's stream state (inside / outside Stream Start..Stop).
 * Never: allocates, logs, does I/O, skips an unknown tag, flag or column
 * kind, or changes any state when a message fails to decode.
 *
 * Wire layout (Int = big-endian; [xid] only between Stream Start and Stop):
 *
 *   'B' Begin              Int64 final_lsn, Int64 commit_time, Int32 xid
 *   'C' Commit             Int8 flags=0, Int64 commit_lsn, Int64 end_lsn, Int64 commit_time
 *   'O' Origin             Int64 origin_lsn, String name
 *   'R' Relation           [xid] Int32 relid, String nsp, String rel, Int8 replident,
 *                          Int16 ncols, ncols x (Int8 flags, String name, Int32 type, Int32 typmod)
 *   'Y' Type               [xid] Int32 oid, String nsp, String name
 *   'I' Insert             [xid] Int32 relid, 'N' Tuple
 *   'U' Update             [xid] Int32 relid, ['K'|'O' Tuple], 'N' Tuple
 *   'D' Delete             [xid] Int32 relid, 'K'|'O' Tuple
 *   'T' Truncate           [xid] Int32 nrels, Int8 options, nrels x Int32 relid
 *   'M' Message            [xid] Int8 flags, Int64 lsn, String prefix, Int32 len, Byte[len]
 *   'S' Stream Start       Int32 xid, Int8 first_segment                       (v2+)
 *   'E' Stream Stop        -                                                   (v2+)
 *   'c' Stream Commit      Int32 xid, Int8 flags=0, Int64 commit_lsn, Int64 end_lsn, Int64 time
 *   'A' Stream Abort       Int32 xid, Int32 subxid [, Int64 abort_lsn, Int64 abort_time (v4)]
 *   'b' Begin Prepare      Int64 prepare_lsn, Int64 end_lsn, Int64 time, Int32 xid, String gid (v3+)
 *   'P' Prepare            Int8 flags=0, Int64 prepare_lsn, Int64 end_lsn, Int64 time, Int32 xid,
 *                          String gid                                          (v3+)
 *   'K' Commit Prepared    Int8 flags=0, Int64 commit_lsn, Int64 end_lsn, Int64 time, Int32 xid,
 *                          String gid                                          (v3+)
 *   'r' Rollback Prepared  Int8 flags=0, Int64 prepare_end_lsn, Int64 rollback_end_lsn,
 *                          Int64 prepare_time, Int64 rollback_time, Int32 xid, String gid (v3+)
 *   'p' Stream Prepare     as 'P'                                              (v3+)
 *
 *   Tuple                  Int16 ncols, ncols x (Byte1 kind: 'n' | 'u' | 't' Int32 len Byte[len]
 *                                                 | 'b' Int32 len Byte[len])
 */
#include "pgo_cursor.h"

/* What each message type needs of the protocol and the stream state. */
typedef enum pgo__stream_rule
{
	PGO__ANYWHERE,       /* Origin */
	PGO__OUTSIDE_STREAM, /* transaction control: never inside Start..Stop */
	PGO__MAY_STREAM      /* changes: carry an xid inside Start..Stop */
} pgo__stream_rule;

/* Fail with INVALID_LSN if a required LSN is zero (as PostgreSQL's reader does). */
static bool
pgo__check_lsn(pgo__cursor *c, pgo_lsn lsn, size_t at, const char *what)
{
	if (lsn != 0)
		return true;
	return pgo__fail(c, PGO_ERR_INVALID_LSN, at, "%s is 0/0", what);
}

/* Read an Int64 LSN that must not be zero. */
static PGO_MUSTCHECK bool
pgo__get_lsn_required(pgo__cursor *c, pgo_lsn *lsn, const char *what)
{
	size_t at = c->pos;

	return pgo__get_u64(c, lsn, what) && pgo__check_lsn(c, *lsn, at, what);
}

/* Read a flags byte that must be zero ("currently unused"). */
static PGO_MUSTCHECK bool
pgo__get_zero_flags(pgo__cursor *c, uint8_t *flags)
{
	size_t at = c->pos;

	if (!pgo__get_u8(c, flags, "flags"))
		return false;
	if (*flags != 0)
		return pgo__fail(c, PGO_ERR_BAD_FLAGS, at, "flags 0x%02x, expected 0", *flags);
	return true;
}

/* Read a flags byte whose bits must lie within allowed. */
static PGO_MUSTCHECK bool
pgo__get_flags(pgo__cursor *c, uint8_t *flags, uint8_t allowed, const char *what)
{
	size_t at = c->pos;

	if (!pgo__get_u8(c, flags, what))
		return false;
	if ((*flags & (uint8_t)~allowed) != 0)
		return pgo__fail(c, PGO_ERR_BAD_FLAGS, at, "%s 0x%02x, known bits 0x%02x", what, *flags,
		                 allowed);
	return true;
}

/* Read an Int16 count that must be 0..limit. */
static PGO_MUSTCHECK bool
pgo__get_ncols(pgo__cursor *c, uint16_t *n, uint16_t limit, const char *what)
{
	size_t at = c->pos;

	if (!pgo__get_u16(c, n, what))
		return false;
	if (*n > INT16_MAX)
		return pgo__fail(c, PGO_ERR_BAD_COUNT, at, "%s: %d", what, (int16_t)*n);
	if (*n > limit)
		return pgo__fail(c, PGO_ERR_TOO_MANY_COLUMNS, at, "%s: %u, limit %u", what, *n, limit);
	return true;
}

/* Read TupleData into storage; natts is the relation's column count or -1. */
static PGO_MUSTCHECK bool
pgo__get_tuple(pgo__cursor *c, const pgo_config *cfg, int natts, pgo_value *storage, pgo_tuple *tup)
{
	size_t at = c->pos;
	uint16_t ncols;

	if (!pgo__get_ncols(c, &ncols, cfg->max_columns, "tuple column count"))
		return false;
	if (natts >= 0 && ncols != natts)
		return pgo__fail(c, PGO_ERR_COLUMN_COUNT_MISMATCH, at,
		                 "tuple has %u columns, relation has %d", ncols, natts);
	for (uint16_t i = 0; i < ncols; i++)
	{
		pgo_value *v = &storage[i];
		size_t kind_at = c->pos;
		uint8_t kind;
		const uint8_t *data;

		if (!pgo__get_u8(c, &kind, "column kind"))
			return false;
		v->kind = (char)kind;
		switch (kind)
		{
			case PGO_COL_NULL:
			case PGO_COL_UNCHANGED:
				v->data = NULL;
				v->len = 0;
				break;
			case PGO_COL_TEXT:
			case PGO_COL_BINARY:
				if (!pgo__get_len32(c, &v->len, "value length") ||
				    !pgo__get_bytes(c, v->len, &data, "value"))
				{
					/* say which column: the getters named only the field */
					char field[sizeof(c->err->detail)];

					memcpy(field, c->err->detail, sizeof(field));
					snprintf(c->err->detail, sizeof(c->err->detail), "column %u %.80s", i + 1u,
					         field);
					return false;
				}
				v->data = (const char *)data;
				break;
			default:
				return pgo__fail(c, PGO_ERR_BAD_COLUMN_KIND, kind_at,
				                 "column %u kind 0x%02x, expected 'n', 'u', 't' or 'b'", i + 1u,
				                 kind);
		}
	}
	tup->ncols = ncols;
	tup->cols = storage;
	return true;
}

/* Read a tuple marker byte and check it is one of allowed (a short string of bytes). */
static PGO_MUSTCHECK bool
pgo__get_marker(pgo__cursor *c, char *marker, const char *allowed)
{
	size_t at = c->pos;
	uint8_t m;

	if (!pgo__get_u8(c, &m, "tuple marker"))
		return false;
	if (m == 0 || strchr(allowed, m) == NULL)
		return pgo__fail(c, PGO_ERR_BAD_TUPLE_MARKER, at, "tuple marker 0x%02x, expected one of %s",
		                 m, allowed);
	*marker = (char)m;
	return true;
}

/* The relation's expected column count, or -1 when unknown. */
static int
pgo__natts(const pgo_config *cfg, pgo_oid relid)
{
	return cfg->natts ? cfg->natts(cfg->natts_arg, relid) : -1;
}

/* 'R' Relation. */
static bool
pgo__read_relation(pgo__cursor *c, const pgo_config *cfg, pgo_relation *r)
{
	size_t at;
	uint8_t ident;

	if (!pgo__get_u32(c, &r->relid, "relation id") || !pgo__get_str(c, &r->nspname, "namespace") ||
	    !pgo__get_str(c, &r->relname, "relation name"))
		return false;
	at = c->pos;
	if (!pgo__get_u8(c, &ident, "replica identity"))
		return false;
	if (ident != PGO_REPLIDENT_DEFAULT && ident != PGO_REPLIDENT_NOTHING &&
	    ident != PGO_REPLIDENT_FULL && ident != PGO_REPLIDENT_INDEX)
		return pgo__fail(c, PGO_ERR_BAD_REPLICA_IDENTITY, at,
		                 "replica identity 0x%02x, expected 'd', 'n', 'f' or 'i'", ident);
	r->replident = (char)ident;
	if (!pgo__get_ncols(c, &r->ncols, cfg->max_columns, "relation column count"))
		return false;
	for (uint16_t i = 0; i < r->ncols; i++)
	{
		pgo_relcol *col = &cfg->rel_cols[i];
		uint32_t typmod;

		if (!pgo__get_flags(c, &col->flags, PGO_RELCOL_KEY, "column flags") ||
		    !pgo__get_str(c, &col->name, "column name") ||
		    !pgo__get_u32(c, &col->type_oid, "column type") ||
		    !pgo__get_u32(c, &typmod, "column typmod"))
			return false;
		col->typmod = (int32_t)typmod;
	}
	r->cols = cfg->rel_cols;
	return true;
}

/* 'U' Update. */
static bool
pgo__read_update(pgo__cursor *c, const pgo_config *cfg, pgo_update *u)
{
	char marker;
	int natts;

	if (!pgo__get_u32(c, &u->relid, "relation id"))
		return false;
	natts = pgo__natts(cfg, u->relid);
	if (!pgo__get_marker(c, &marker, "KON"))
		return false;
	u->old_kind = 0;
	u->oldtup.ncols = 0;
	u->oldtup.cols = cfg->old_cols;
	if (marker != 'N')
	{
		u->old_kind = marker;
		if (!pgo__get_tuple(c, cfg, natts, cfg->old_cols, &u->oldtup) ||
		    !pgo__get_marker(c, &marker, "N"))
			return false;
	}
	return pgo__get_tuple(c, cfg, natts, cfg->new_cols, &u->newtup);
}

/* 'T' Truncate. */
static bool
pgo__read_truncate(pgo__cursor *c, pgo_truncate *t)
{
	size_t at = c->pos;

	if (!pgo__get_u32(c, &t->nrelids, "relation count"))
		return false;
	if (t->nrelids > INT32_MAX)
		return pgo__fail(c, PGO_ERR_BAD_COUNT, at, "relation count %d", (int32_t)t->nrelids);
	return pgo__get_flags(c, &t->options, PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY,
	                      "truncate options") &&
	       pgo__get_bytes(c, (size_t)t->nrelids * 4, &t->relids_raw, "relation ids");
}

/* 'M' logical decoding message. */
static bool
pgo__read_message(pgo__cursor *c, pgo_logical_message *m)
{
	const uint8_t *content;

	if (!pgo__get_flags(c, &m->flags, PGO_MESSAGE_TRANSACTIONAL, "message flags") ||
	    !pgo__get_u64(c, &m->lsn, "message lsn") || !pgo__get_str(c, &m->prefix, "prefix") ||
	    !pgo__get_len32(c, &m->content_len, "content length") ||
	    !pgo__get_bytes(c, m->content_len, &content, "content"))
		return false;
	m->content = (const char *)content;
	return true;
}

/* 'b' Begin Prepare, 'P' Prepare, 'p' Stream Prepare. */
static bool
pgo__read_prepare(pgo__cursor *c, bool has_flags, pgo_prepare *p)
{
	p->flags = 0;
	return (!has_flags || pgo__get_zero_flags(c, &p->flags)) &&
	       pgo__get_lsn_required(c, &p->prepare_lsn, "prepare lsn") &&
	       pgo__get_lsn_required(c, &p->end_lsn, "end lsn") &&
	       pgo__get_i64(c, &p->prepare_time, "prepare time") && pgo__get_u32(c, &p->xid, "xid") &&
	       pgo__get_str(c, &p->gid, "gid");
}

/* 'A' Stream Abort; the v4 abort LSN and time come only with streaming = parallel. */
static bool
pgo__read_stream_abort(pgo__cursor *c, int proto_version, pgo_stream_abort *a)
{
	if (!pgo__get_u32(c, &a->xid, "xid") || !pgo__get_u32(c, &a->subxid, "subtransaction xid"))
		return false;
	a->has_abort_info = false;
	a->abort_lsn = 0;
	a->abort_time = 0;
	if (proto_version >= 4 && pgo__left(c) > 0)
	{
		if (!pgo__get_u64(c, &a->abort_lsn, "abort lsn") ||
		    !pgo__get_i64(c, &a->abort_time, "abort time"))
			return false;
		a->has_abort_info = true;
	}
	return true;
}

/* The body of message type t; the cursor is past the tag (and xid). */
static bool
pgo__read_body(pgo__cursor *c, const pgo_config *cfg, pgo_message *m)
{
	switch (m->type)
	{
		case PGO_MSG_BEGIN:
			return pgo__get_lsn_required(c, &m->u.begin.final_lsn, "final lsn") &&
			       pgo__get_i64(c, &m->u.begin.commit_time, "commit time") &&
			       pgo__get_u32(c, &m->u.begin.xid, "xid");
		case PGO_MSG_COMMIT:
			return pgo__get_zero_flags(c, &m->u.commit.flags) &&
			       pgo__get_u64(c, &m->u.commit.commit_lsn, "commit lsn") &&
			       pgo__get_u64(c, &m->u.commit.end_lsn, "end lsn") &&
			       pgo__get_i64(c, &m->u.commit.commit_time, "commit time");
		case PGO_MSG_ORIGIN:
			return pgo__get_u64(c, &m->u.origin.origin_lsn, "origin lsn") &&
			       pgo__get_str(c, &m->u.origin.name, "origin name");
		case PGO_MSG_RELATION:
			return pgo__read_relation(c, cfg, &m->u.relation);
		case PGO_MSG_TYPE:
			return pgo__get_u32(c, &m->u.type.oid, "type oid") &&
			       pgo__get_str(c, &m->u.type.nspname, "namespace") &&
			       pgo__get_str(c, &m->u.type.typname, "type name");
		case PGO_MSG_INSERT:
		{
			char marker;

			return pgo__get_u32(c, &m->u.insert.relid, "relation id") &&
			       pgo__get_marker(c, &marker, "N") &&
			       pgo__get_tuple(c, cfg, pgo__natts(cfg, m->u.insert.relid), cfg->new_cols,
			                      &m->u.insert.newtup);
		}
		case PGO_MSG_UPDATE:
			return pgo__read_update(c, cfg, &m->u.update);
		case PGO_MSG_DELETE:
			return pgo__get_u32(c, &m->u.del.relid, "relation id") &&
			       pgo__get_marker(c, &m->u.del.old_kind, "KO") &&
			       pgo__get_tuple(c, cfg, pgo__natts(cfg, m->u.del.relid), cfg->old_cols,
			                      &m->u.del.oldtup);
		case PGO_MSG_TRUNCATE:
			return pgo__read_truncate(c, &m->u.truncate);
		case PGO_MSG_MESSAGE:
			return pgo__read_message(c, &m->u.message);
		case PGO_MSG_STREAM_START:
			return pgo__get_u32(c, &m->u.stream_start.xid, "xid") &&
			       pgo__get_flags(c, &m->u.stream_start.first_segment, 1, "first segment");
		case PGO_MSG_STREAM_STOP:
			return true;
		case PGO_MSG_STREAM_COMMIT:
			return pgo__get_u32(c, &m->u.stream_commit.xid, "xid") &&
			       pgo__get_zero_flags(c, &m->u.stream_commit.flags) &&
			       pgo__get_u64(c, &m->u.stream_commit.commit_lsn, "commit lsn") &&
			       pgo__get_u64(c, &m->u.stream_commit.end_lsn, "end lsn") &&
			       pgo__get_i64(c, &m->u.stream_commit.commit_time, "commit time");
		case PGO_MSG_STREAM_ABORT:
			return pgo__read_stream_abort(c, cfg->proto_version, &m->u.stream_abort);
		case PGO_MSG_BEGIN_PREPARE:
			return pgo__read_prepare(c, false, &m->u.begin_prepare);
		case PGO_MSG_PREPARE:
			return pgo__read_prepare(c, true, &m->u.prepare);
		case PGO_MSG_STREAM_PREPARE:
			return pgo__read_prepare(c, true, &m->u.stream_prepare);
		case PGO_MSG_COMMIT_PREPARED:
		{
			pgo_commit_prepared *k = &m->u.commit_prepared;

			return pgo__get_zero_flags(c, &k->flags) &&
			       pgo__get_lsn_required(c, &k->commit_lsn, "commit lsn") &&
			       pgo__get_lsn_required(c, &k->end_lsn, "end lsn") &&
			       pgo__get_i64(c, &k->commit_time, "commit time") &&
			       pgo__get_u32(c, &k->xid, "xid") && pgo__get_str(c, &k->gid, "gid");
		}
		case PGO_MSG_ROLLBACK_PREPARED:
		{
			pgo_rollback_prepared *r = &m->u.rollback_prepared;

			return pgo__get_zero_flags(c, &r->flags) &&
			       pgo__get_lsn_required(c, &r->prepare_end_lsn, "prepare end lsn") &&
			       pgo__get_lsn_required(c, &r->rollback_end_lsn, "rollback end lsn") &&
			       pgo__get_i64(c, &r->prepare_time, "prepare time") &&
			       pgo__get_i64(c, &r->rollback_time, "rollback time") &&
			       pgo__get_u32(c, &r->xid, "xid") && pgo__get_str(c, &r->gid, "gid");
		}
	}
	return false; /* not reached: pgo_decode checked the tag */
}

/* Protocol version a message type needs, its stream rule; false if unknown. */
static bool
pgo__classify(int type, int *min_version, pgo__stream_rule *rule)
{
	*min_version = 1;
	switch (type)
	{
		case PGO_MSG_ORIGIN:
			*rule = PGO__ANYWHERE;
			return true;
		case PGO_MSG_BEGIN:
		case PGO_MSG_COMMIT:
			*rule = PGO__OUTSIDE_STREAM;
			return true;
		case PGO_MSG_RELATION:
		case PGO_MSG_TYPE:
		case PGO_MSG_INSERT:
		case PGO_MSG_UPDATE:
		case PGO_MSG_DELETE:
		case PGO_MSG_TRUNCATE:
		case PGO_MSG_MESSAGE:
			*rule = PGO__MAY_STREAM;
			return true;
		case PGO_MSG_STREAM_START:
		case PGO_MSG_STREAM_STOP:
			*min_version = 2;
			*rule = PGO__ANYWHERE; /* checked by pgo_decode itself */
			return true;
		case PGO_MSG_STREAM_COMMIT:
		case PGO_MSG_STREAM_ABORT:
			*min_version = 2;
			*rule = PGO__OUTSIDE_STREAM;
			return true;
		case PGO_MSG_BEGIN_PREPARE:
		case PGO_MSG_PREPARE:
		case PGO_MSG_COMMIT_PREPARED:
		case PGO_MSG_ROLLBACK_PREPARED:
		case PGO_MSG_STREAM_PREPARE:
			*min_version = 3;
			*rule = PGO__OUTSIDE_STREAM;
			return true;
		default:
			return false;
	}
}

/* Set up a decoder from cfg; the storage arrays stay the caller's. */
pgo_err
pgo_decoder_init(pgo_decoder *dec, const pgo_config *cfg)
{
	if (dec == NULL || cfg == NULL)
		return PGO_ERR_INVALID_ARGUMENT;
	memset(dec, 0, sizeof(*dec));
	if (cfg->proto_version < PGO_PROTO_VERSION_MIN || cfg->proto_version > PGO_PROTO_VERSION_MAX ||
	    cfg->max_columns == 0 || cfg->old_cols == NULL || cfg->new_cols == NULL ||
	    cfg->rel_cols == NULL)
		return PGO_ERR_INVALID_ARGUMENT;
	dec->cfg = *cfg;
	return PGO_ERR_OK;
}

/* Decode one message; see pgoutput.h. */
pgo_err
pgo_decode(pgo_decoder *dec, const void *buf, size_t len, pgo_message *out)
{
	pgo__cursor c = {.buf = buf, .len = len, .pos = 0, .err = &dec->error};
	int min_version;
	pgo__stream_rule rule;
	uint8_t tag;

	memset(&dec->error, 0, sizeof(dec->error));
	if (len == 0)
	{
		pgo__fail(&c, PGO_ERR_EMPTY, 0, "no message type byte");
		return dec->error.code;
	}
	tag = c.buf[0];
	dec->error.msgtype = (char)tag;
	if (dec->cfg.max_message_size != 0 && len > dec->cfg.max_message_size)
	{
		pgo__fail(&c, PGO_ERR_TOO_LARGE, 0, "%zu bytes, limit %u", len, dec->cfg.max_message_size);
		return dec->error.code;
	}
	c.pos = 1;
	if (!pgo__classify(tag, &min_version, &rule))
	{
		pgo__fail(&c, PGO_ERR_UNKNOWN_MESSAGE, 0, "type byte 0x%02x", tag);
		return dec->error.code;
	}
	if (dec->cfg.proto_version < min_version)
	{
		pgo__fail(&c, PGO_ERR_PROTO_VERSION, 0, "needs protocol version %d, negotiated %d",
		          min_version, dec->cfg.proto_version);
		return dec->error.code;
	}
	if ((rule == PGO__OUTSIDE_STREAM && dec->in_stream) ||
	    (tag == PGO_MSG_STREAM_START && dec->in_stream) ||
	    (tag == PGO_MSG_STREAM_STOP && !dec->in_stream))
	{
		pgo__fail(&c, PGO_ERR_STREAM_STATE, 0, "%s %s", pgo_msgtype_name(tag),
		          dec->in_stream ? "inside a streamed block (no Stream Stop yet)"
		                         : "without Stream Start");
		return dec->error.code;
	}

	out->type = (pgo_msgtype)tag;
	out->has_xid = false;
	out->xid = 0;
	if (rule == PGO__MAY_STREAM && dec->in_stream)
	{
		if (!pgo__get_u32(&c, &out->xid, "streamed transaction xid"))
			return dec->error.code;
		out->has_xid = true;
	}
	if (!pgo__read_body(&c, &dec->cfg, out) || !pgo__end(&c))
		return dec->error.code;

	/* Only a fully decoded message changes state. */
	if (tag == PGO_MSG_STREAM_START)
		dec->in_stream = true;
	else if (tag == PGO_MSG_STREAM_STOP)
		dec->in_stream = false;
	return PGO_ERR_OK;
}

/* Relation i of a Truncate message, read from the validated raw array. */
pgo_oid
pgo_truncate_relid(const pgo_truncate *t, uint32_t i)
{
	const uint8_t *p;

	if (i >= t->nrelids)
		return 0;
	p = t->relids_raw + (size_t)i * 4;
	return (pgo_oid)p[0] << 24 | (pgo_oid)p[1] << 16 | (pgo_oid)p[2] << 8 | (pgo_oid)p[3];
}
