/*
 * testbuf.h — a byte builder for tests: protocol messages written field by
 * field in network order, into a fixed buffer.
 *
 * Owns: its own fixed array. Never allocates; overflow fails the test.
 */
#ifndef TESTBUF_H
#define TESTBUF_H

#include <check.h>
#include <stdint.h>
#include <string.h>

typedef struct testbuf
{
	uint8_t data[8192];
	size_t len;
} testbuf;

/* Append raw bytes. */
static inline testbuf *
tb_bytes(testbuf *b, const void *p, size_t n)
{
	ck_assert_msg(b->len + n <= sizeof(b->data), "testbuf overflow");
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return b;
}

/* Append one byte. */
static inline testbuf *
tb_u8(testbuf *b, uint8_t v)
{
	return tb_bytes(b, &v, 1);
}

/* Append a big-endian 16-bit integer. */
static inline testbuf *
tb_u16(testbuf *b, uint16_t v)
{
	uint8_t p[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	return tb_bytes(b, p, 2);
}

/* Append a big-endian 32-bit integer. */
static inline testbuf *
tb_u32(testbuf *b, uint32_t v)
{
	uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	return tb_bytes(b, p, 4);
}

/* Append a big-endian 64-bit integer. */
static inline testbuf *
tb_u64(testbuf *b, uint64_t v)
{
	tb_u32(b, (uint32_t)(v >> 32));
	return tb_u32(b, (uint32_t)v);
}

/* Append a NUL-terminated string. */
static inline testbuf *
tb_str(testbuf *b, const char *s)
{
	return tb_bytes(b, s, strlen(s) + 1);
}

/* Append one tuple column: 'n', 'u', or 't'/'b' with its value. */
static inline testbuf *
tb_col(testbuf *b, char kind, const char *value)
{
	tb_u8(b, (uint8_t)kind);
	if (kind == 't' || kind == 'b')
	{
		tb_u32(b, (uint32_t)strlen(value));
		tb_bytes(b, value, strlen(value));
	}
	return b;
}

#endif /* TESTBUF_H */
