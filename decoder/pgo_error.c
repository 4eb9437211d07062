/*
 * pgo_error.c — names and reasons for libpgoutput's error codes and message
 * types, the one-line error format, and the text form of LSNs.
 *
 * Owns: static strings only. Never allocates or does I/O.
 */
#include <inttypes.h>
#include <stdio.h>

#include "pgoutput.h"

static const char *const pgo__reasons[] = {
#define PGO__ERR_REASON(name, reason) reason,
    PGO_ERRNO_MAP(PGO__ERR_REASON)
#undef PGO__ERR_REASON
};

static const char *const pgo__names[] = {
#define PGO__ERR_NAME(name, reason) #name,
    PGO_ERRNO_MAP(PGO__ERR_NAME)
#undef PGO__ERR_NAME
};

/* Short reason for an error code. */
const char *
pgo_strerror(pgo_err code)
{
	if ((unsigned)code >= PGO_ERR__COUNT)
		return "unknown error code";
	return pgo__reasons[code];
}

/* Symbolic name of an error code. */
const char *
pgo_errname(pgo_err code)
{
	if ((unsigned)code >= PGO_ERR__COUNT)
		return "UNKNOWN";
	return pgo__names[code];
}

/* Name of a message type (pgoutput tags, and the CopyData 'w' and 'k'). */
const char *
pgo_msgtype_name(int type)
{
	switch (type)
	{
		case PGO_MSG_BEGIN:
			return "Begin";
		case PGO_MSG_COMMIT:
			return "Commit";
		case PGO_MSG_ORIGIN:
			return "Origin";
		case PGO_MSG_RELATION:
			return "Relation";
		case PGO_MSG_TYPE:
			return "Type";
		case PGO_MSG_INSERT:
			return "Insert";
		case PGO_MSG_UPDATE:
			return "Update";
		case PGO_MSG_DELETE:
			return "Delete";
		case PGO_MSG_TRUNCATE:
			return "Truncate";
		case PGO_MSG_MESSAGE:
			return "Message";
		case PGO_MSG_STREAM_START:
			return "Stream Start";
		case PGO_MSG_STREAM_STOP:
			return "Stream Stop";
		case PGO_MSG_STREAM_COMMIT:
			return "Stream Commit";
		case PGO_MSG_STREAM_ABORT:
			return "Stream Abort";
		case PGO_MSG_BEGIN_PREPARE:
			return "Begin Prepare";
		case PGO_MSG_PREPARE:
			return "Prepare";
		case PGO_MSG_COMMIT_PREPARED:
			return "Commit Prepared";
		case PGO_MSG_ROLLBACK_PREPARED:
			return "Rollback Prepared";
		case PGO_MSG_STREAM_PREPARE:
			return "Stream Prepare";
		case PGO_COPY_XLOGDATA:
			return "XLogData";
		case PGO_COPY_KEEPALIVE:
			return "Keepalive";
		default:
			return "unknown";
	}
}

/* One readable line for an error. */
int
pgo_error_format(const pgo_error *err, char *buf, size_t size)
{
	char type[32];
	const char *name = pgo_msgtype_name((unsigned char)err->msgtype);

	if (err->msgtype == 0)
		snprintf(type, sizeof(type), "message");
	else if (err->code == PGO_ERR_UNKNOWN_MESSAGE || err->code == PGO_ERR_UNKNOWN_COPY_MESSAGE)
		snprintf(type, sizeof(type), "message type 0x%02x", (unsigned char)err->msgtype);
	else
		snprintf(type, sizeof(type), "%s message", name);
	return snprintf(buf, size, "%s, byte %zu: %s%s%s%s", type, err->offset, pgo_strerror(err->code),
	                err->detail[0] ? " (" : "", err->detail, err->detail[0] ? ")" : "");
}

/* Format lsn as PostgreSQL does ("16/B374D848"). */
char *
pgo_lsn_format(pgo_lsn lsn, char buf[PGO_LSN_STRLEN])
{
	snprintf(buf, PGO_LSN_STRLEN, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
	return buf;
}

/* Parse up to 8 hex digits into *v; returns the number of digits read. */
static int
pgo__parse_hex32(const char *s, uint32_t *v)
{
	int n = 0;

	*v = 0;
	for (; n < 9; n++)
	{
		char ch = s[n];
		uint32_t d;

		if (ch >= '0' && ch <= '9')
			d = (uint32_t)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (uint32_t)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			d = (uint32_t)(ch - 'A' + 10);
		else
			break;
		if (n == 8)
			return 9; /* too many digits */
		*v = *v << 4 | d;
	}
	return n;
}

/* Parse "X/X" into *out. */
bool
pgo_lsn_parse(const char *text, pgo_lsn *out)
{
	uint32_t hi, lo;
	int n;

	if (text == NULL)
		return false;
	n = pgo__parse_hex32(text, &hi);
	if (n < 1 || n > 8 || text[n] != '/')
		return false;
	text += n + 1;
	n = pgo__parse_hex32(text, &lo);
	if (n < 1 || n > 8 || text[n] != '\0')
		return false;
	*out = (pgo_lsn)hi << 32 | lo;
	return true;
}
