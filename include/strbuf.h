/*
 * strbuf.h — a growable byte buffer for building output lines: plain bytes,
 * printf-style text, SQL literals, JSON strings, C-style escaped text, hex.
 *
 * Owns: its data area (malloc'd on first append, grown by doubling, freed by
 * strbuf_free). The caller allocates the strbuf itself and resets it once per
 * message or transaction; the capacity is kept, so a steady stream of lines
 * allocates nothing after warm-up.
 *
 * Never: aborts or exits on allocation failure (every append returns false
 * and leaves the contents as they were), or leaves the data without a
 * terminating NUL once something has been appended.
 */
#ifndef STRBUF_H
#define STRBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "pgdbm_attr.h"

#if defined(__GNUC__) || defined(__clang__)
#define STRBUF_PRINTF(fmt, arg) __attribute__((format(printf, fmt, arg)))
#else
#define STRBUF_PRINTF(fmt, arg)
#endif

typedef struct strbuf
{
	char *data; /* malloc'd, freed by strbuf_free; NULL until the first append */
	size_t len; /* bytes used, not counting the NUL kept at data[len] */
	size_t cap; /* bytes allocated */
} strbuf;

/* Set up an empty buffer; allocates nothing. */
void strbuf_init(strbuf *sb);

/* Free the data area; the buffer is empty and reusable afterwards. */
void strbuf_free(strbuf *sb);

/* Empty the buffer, keeping its capacity. */
void strbuf_reset(strbuf *sb);

/* Cut the contents back to len bytes (no-op if already shorter). */
void strbuf_truncate(strbuf *sb, size_t len);

/* The contents, NUL-terminated ("" when empty); valid until the next append or free. */
const char *strbuf_data(const strbuf *sb);

/* Number of bytes in the buffer. */
size_t strbuf_len(const strbuf *sb);

/* Make room for extra more bytes (plus the NUL) without further allocation. */
PGDBM_MUST_CHECK bool strbuf_reserve(strbuf *sb, size_t extra);

/* Append len raw bytes. */
PGDBM_MUST_CHECK bool strbuf_append(strbuf *sb, const void *data, size_t len);

/* Append one byte. */
PGDBM_MUST_CHECK bool strbuf_append_char(strbuf *sb, char c);

/* Append a NUL-terminated string. */
PGDBM_MUST_CHECK bool strbuf_append_cstr(strbuf *sb, const char *s);

/* Append printf-style formatted text; false also on a format error. */
PGDBM_MUST_CHECK bool strbuf_appendf(strbuf *sb, const char *fmt, ...) STRBUF_PRINTF(2, 3);

/*
 * Append len bytes as an SQL string literal with single quotes doubled:
 * 'it''s' (standard_conforming_strings, so a backslash is itself). A value
 * holding a control byte (< 0x20 or DEL) is written in escape-string form
 * instead, E'line1\nline2', so the literal stays on one line and still reads
 * back as the same value: quotes doubled, backslashes doubled, \n \r \t \b
 * \f, other control bytes as \xHH. Bytes >= 0x80 pass through.
 */
PGDBM_MUST_CHECK bool strbuf_append_sql_literal(strbuf *sb, const char *data, size_t len);

/*
 * Append len bytes as a JSON string, quotes included. " and \ are escaped,
 * control bytes and DEL become \u00XX, valid UTF-8 passes through. A byte
 * that is not part of valid UTF-8 (stray continuation, overlong form,
 * surrogate, beyond U+10FFFF, truncated sequence) becomes \u00XX of its own
 * value, i.e. is read as Latin-1: the output is always valid JSON and
 * nothing is silently dropped.
 */
PGDBM_MUST_CHECK bool strbuf_append_json_string(strbuf *sb, const char *data, size_t len);

/*
 * Append len bytes as C-style escaped text without quotes, for a human
 * reading one line per record: \\ for a backslash, \n \r \t \b \f, \xHH for other
 * control bytes, DEL and bytes that are not valid UTF-8; everything else
 * (printable ASCII, valid UTF-8) as is.
 */
PGDBM_MUST_CHECK bool strbuf_append_escaped(strbuf *sb, const char *data, size_t len);

/* Append len bytes as lowercase hex digits, two per byte. */
PGDBM_MUST_CHECK bool strbuf_append_hex(strbuf *sb, const void *data, size_t len);

/*
 * Length of the valid UTF-8 sequence starting at s (at most len bytes long),
 * or 0 if the bytes there are not one (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF).
 */
size_t strbuf_utf8_seqlen(const unsigned char *s, size_t len);

/* Whether all len bytes are valid UTF-8. */
bool strbuf_utf8_valid(const char *data, size_t len);

#endif /* STRBUF_H */
