/*
 * pgo_cursor.h — libpgoutput internal: a bounds-checked read cursor over a
 * borrowed buffer (the role of PostgreSQL's pqformat.c getters).
 *
 * Owns: nothing; the buffer is the caller's. Every getter checks the bytes it
 * needs are there before it reads them, is must-check, moves the cursor only
 * on success, and on failure records code, offset and the field's name in
 * the error. Never reads outside [buf, buf + len). Not part of the public API.
 */
#ifndef PGO_CURSOR_H
#define PGO_CURSOR_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pgoutput.h"

typedef struct pgo__cursor
{
	const uint8_t *buf; /* borrowed: the message */
	size_t len;
	size_t pos;
	pgo_error *err; /* borrowed: where failures are recorded */
} pgo__cursor;

#if defined(__GNUC__) || defined(__clang__)
#define PGO__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PGO__PRINTF(f, a)
#endif

/* Record a failure at offset; detail says which field. Always returns false. */
static inline PGO__PRINTF(4, 5) bool pgo__fail(pgo__cursor *c, pgo_err code, size_t offset,
                                               const char *fmt, ...)
{
	va_list ap;

	c->err->code = code;
	c->err->offset = offset;
	va_start(ap, fmt);
	vsnprintf(c->err->detail, sizeof(c->err->detail), fmt, ap);
	va_end(ap);
	return false;
}

/* Bytes left after the cursor. */
static inline size_t
pgo__left(const pgo__cursor *c)
{
	return c->len - c->pos;
}

/* Fail with TRUNCATED unless n bytes are left for field what. */
static inline PGO_MUSTCHECK bool
pgo__need(pgo__cursor *c, size_t n, const char *what)
{
	if (pgo__left(c) >= n)
		return true;
	return pgo__fail(c, PGO_ERR_TRUNCATED, c->pos, "%s: need %zu bytes, %zu left", what, n,
	                 pgo__left(c));
}

/* Read one byte. */
static inline PGO_MUSTCHECK bool
pgo__get_u8(pgo__cursor *c, uint8_t *v, const char *what)
{
	if (!pgo__need(c, 1, what))
		return false;
	*v = c->buf[c->pos++];
	return true;
}

/* Read a big-endian 16-bit integer. */
static inline PGO_MUSTCHECK bool
pgo__get_u16(pgo__cursor *c, uint16_t *v, const char *what)
{
	const uint8_t *p;

	if (!pgo__need(c, 2, what))
		return false;
	p = c->buf + c->pos;
	*v = (uint16_t)((uint16_t)p[0] << 8 | p[1]);
	c->pos += 2;
	return true;
}

/* Read a big-endian 32-bit integer. */
static inline PGO_MUSTCHECK bool
pgo__get_u32(pgo__cursor *c, uint32_t *v, const char *what)
{
	const uint8_t *p;

	if (!pgo__need(c, 4, what))
		return false;
	p = c->buf + c->pos;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
	c->pos += 4;
	return true;
}

/* Read a big-endian 64-bit integer. */
static inline PGO_MUSTCHECK bool
pgo__get_u64(pgo__cursor *c, uint64_t *v, const char *what)
{
	const uint8_t *p;
	uint64_t r = 0;

	if (!pgo__need(c, 8, what))
		return false;
	p = c->buf + c->pos;
	for (int i = 0; i < 8; i++)
		r = r << 8 | p[i];
	*v = r;
	c->pos += 8;
	return true;
}

/* Read a big-endian signed 64-bit integer (timestamps). */
static inline PGO_MUSTCHECK bool
pgo__get_i64(pgo__cursor *c, int64_t *v, const char *what)
{
	uint64_t u;

	if (!pgo__get_u64(c, &u, what))
		return false;
	*v = (int64_t)u;
	return true;
}

/* Read a non-negative Int32 length; negative is BAD_LENGTH. */
static inline PGO_MUSTCHECK bool
pgo__get_len32(pgo__cursor *c, uint32_t *v, const char *what)
{
	size_t at = c->pos;
	uint32_t u;

	if (!pgo__get_u32(c, &u, what))
		return false;
	if (u > INT32_MAX)
	{
		c->pos = at;
		return pgo__fail(c, PGO_ERR_BAD_LENGTH, at, "%s: %d", what, (int32_t)u);
	}
	*v = u;
	return true;
}

/* Borrow n bytes: *p points into the buffer. */
static inline PGO_MUSTCHECK bool
pgo__get_bytes(pgo__cursor *c, size_t n, const uint8_t **p, const char *what)
{
	if (!pgo__need(c, n, what))
		return false;
	*p = c->buf + c->pos;
	c->pos += n;
	return true;
}

/* Borrow a NUL-terminated string; BAD_STRING if no NUL before the end. */
static inline PGO_MUSTCHECK bool
pgo__get_str(pgo__cursor *c, pgo_str *s, const char *what)
{
	const uint8_t *start = c->buf + c->pos;
	const uint8_t *nul = memchr(start, '\0', pgo__left(c));

	if (nul == NULL)
		return pgo__fail(c, PGO_ERR_BAD_STRING, c->pos, "%s: no terminating NUL in %zu bytes", what,
		                 pgo__left(c));
	s->ptr = (const char *)start;
	s->len = (size_t)(nul - start);
	c->pos += s->len + 1;
	return true;
}

/* The end-of-message check: nothing may be left. */
static inline PGO_MUSTCHECK bool
pgo__end(pgo__cursor *c)
{
	if (pgo__left(c) == 0)
		return true;
	return pgo__fail(c, PGO_ERR_TRAILING_DATA, c->pos, "%zu unexpected bytes", pgo__left(c));
}

#endif /* PGO_CURSOR_H */
