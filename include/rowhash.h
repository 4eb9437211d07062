/*
 * rowhash.h — the order-free digest of a COPY ... TO STDOUT stream: its row
 * count and the sum of every row's XXH3 hash, so that two streams holding the
 * same rows in any order (or in any split into parts) give the same digest.
 *
 * A row is, in text format, its line with its newline (data newlines are
 * escaped, so a raw one always ends a row); in binary format, one tuple from
 * its field count through its last field's bytes (the file header and the
 * trailer are not rows). The stream may be fed in chunks cut anywhere.
 *
 * Text rows of two servers are comparable only when both sessions print
 * values by the same rules: ROWHASH_TEXT_SETTINGS, in the same
 * client_encoding. Binary rows only between servers of the same major
 * version, for types whose binary form carries no server-local OID.
 *
 * Owns: its hash state (rowhash_free). Never: does I/O.
 */
#ifndef ROWHASH_H
#define ROWHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgdbm_attr.h"
#include "replconn.h"

/* The session settings under which a value prints as the same text on two servers. */
#define ROWHASH_TEXT_SETTINGS REPLCONN_FORMAT_SETTINGS "; SET bytea_output TO 'hex'"

typedef struct rowhash
{
	bool binary;
	int64_t rows; /* rows complete so far */
	uint64_t sum; /* the sum of their hashes (wrapping) */
	/* private */
	struct XXH3_state_s *st; /* owned: the start of a row cut by a chunk's end */
	bool in_row;             /* a row is under way */
	bool partial;            /* ... and its first bytes are in st */
	bool failed;             /* malformed binary data: every later feed fails */
	int phase;               /* binary: where the parser is */
	unsigned char small[19]; /* binary: the header or an integer being gathered */
	int small_len;
	int64_t left;   /* binary: bytes to skip (the header extension, a field's data) */
	int fields;     /* binary: fields of the current tuple still to read */
	char error[96]; /* why it failed */
} rowhash;

/* Start a digest; false when out of memory. */
PGDBM_MUST_CHECK bool rowhash_init(rowhash *h, bool binary);

/* Add a chunk of the stream; false when binary data is malformed (h->error says why). */
PGDBM_MUST_CHECK bool rowhash_feed(rowhash *h, const void *data, size_t len);

/* The stream is complete: false when it ended within a row (or binary without its trailer). */
PGDBM_MUST_CHECK bool rowhash_finish(rowhash *h);

void rowhash_free(rowhash *h);

#endif /* ROWHASH_H */
