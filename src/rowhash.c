/*
 * rowhash.c — the order-free digest of a COPY stream (see rowhash.h).
 *
 * A row that lies within one chunk is hashed in one call; one cut by a
 * chunk's end goes through the streaming state, which gives the same hash.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "rowhash.h"

enum
{
	RH_HEADER, /* the 19 bytes: signature, flags, extension length */
	RH_EXT,    /* the header extension, skipped */
	RH_COUNT,  /* a tuple's field count (2 bytes), or the trailer */
	RH_LEN,    /* a field's length (4 bytes) */
	RH_DATA,   /* a field's bytes */
	RH_END     /* after the trailer: nothing more may come */
};

static const unsigned char rowhash_signature[11] = {'P',  'G',  'C',  'O',  'P', 'Y',
                                                    '\n', 0377, '\r', '\n', 0};

bool
rowhash_init(rowhash *h, bool binary)
{
	memset(h, 0, sizeof(*h));
	h->binary = binary;
	h->phase = RH_HEADER;
	h->st = XXH3_createState();
	return h->st != NULL;
}

void
rowhash_free(rowhash *h)
{
	if (h->st)
		XXH3_freeState(h->st);
	h->st = NULL;
}

/* A row ends at p (exclusive); it began at start, or in earlier chunks when partial. */
static void
rowhash_row(rowhash *h, const unsigned char *start, const unsigned char *p)
{
	uint64_t v;

	if (h->partial)
	{
		XXH3_64bits_update(h->st, start, (size_t)(p - start));
		v = XXH3_64bits_digest(h->st);
	}
	else
		v = XXH3_64bits(start, (size_t)(p - start));
	h->sum += v;
	h->rows++;
	h->in_row = h->partial = false;
}

static bool
rowhash_fail(rowhash *h, const char *why)
{
	h->failed = true;
	snprintf(h->error, sizeof(h->error), "malformed binary COPY data: %s", why);
	return false;
}

/* Gather want bytes into small from [*p, end); true once they are all there. */
static bool
rowhash_gather(rowhash *h, const unsigned char **p, const unsigned char *end, int want)
{
	while (h->small_len < want && *p < end)
		h->small[h->small_len++] = *(*p)++;
	return h->small_len == want;
}

static int32_t
rowhash_int32(const unsigned char *b)
{
	return (int32_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
	                 (uint32_t)b[3]);
}

static bool
rowhash_feed_binary(rowhash *h, const unsigned char *p, const unsigned char *end)
{
	const unsigned char *start = p; /* where the current row began in this chunk */

	while (p < end)
	{
		switch (h->phase)
		{
			case RH_HEADER:
				if (!rowhash_gather(h, &p, end, 19))
					break;
				if (memcmp(h->small, rowhash_signature, sizeof(rowhash_signature)) != 0)
					return rowhash_fail(h, "no PGCOPY signature");
				h->left = rowhash_int32(h->small + 15);
				if (h->left < 0)
					return rowhash_fail(h, "a negative header extension length");
				h->small_len = 0;
				h->phase = RH_EXT;
				break;
			case RH_EXT:
			case RH_DATA:
			{
				int64_t n = end - p < h->left ? (int64_t)(end - p) : h->left;

				p += n;
				h->left -= n;
				if (h->left > 0)
					break;
				if (h->phase == RH_EXT)
					h->phase = RH_COUNT;
				else if (--h->fields > 0)
					h->phase = RH_LEN;
				else
				{
					rowhash_row(h, start, p);
					h->phase = RH_COUNT;
				}
				break;
			}
			case RH_COUNT:
			{
				int count;

				if (!h->in_row)
				{
					h->in_row = true;
					start = p;
				}
				if (!rowhash_gather(h, &p, end, 2))
					break;
				count = (int16_t)((uint16_t)h->small[0] << 8 | h->small[1]);
				h->small_len = 0;
				if (count == -1)
				{
					/* the trailer: not a row */
					h->in_row = h->partial = false;
					h->phase = RH_END;
				}
				else if (count < 0)
					return rowhash_fail(h, "a negative field count");
				else if (count == 0)
					rowhash_row(h, start, p);
				else
				{
					h->fields = count;
					h->phase = RH_LEN;
				}
				break;
			}
			case RH_LEN:
			{
				int32_t len;

				if (!rowhash_gather(h, &p, end, 4))
					break;
				len = rowhash_int32(h->small);
				h->small_len = 0;
				if (len < -1)
					return rowhash_fail(h, "a negative field length");
				if (len > 0)
				{
					h->left = len;
					h->phase = RH_DATA;
				}
				else if (--h->fields == 0)
				{
					rowhash_row(h, start, p);
					h->phase = RH_COUNT;
				}
				break;
			}
			default:
				return rowhash_fail(h, "data after the trailer");
		}
	}
	if (h->in_row)
	{
		if (!h->partial)
			XXH3_64bits_reset(h->st);
		XXH3_64bits_update(h->st, start, (size_t)(end - start));
		h->partial = true;
	}
	return true;
}

static void
rowhash_feed_text(rowhash *h, const unsigned char *p, const unsigned char *end)
{
	while (p < end)
	{
		const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl == NULL)
		{
			if (!h->partial)
				XXH3_64bits_reset(h->st);
			XXH3_64bits_update(h->st, p, (size_t)(end - p));
			h->in_row = h->partial = true;
			return;
		}
		rowhash_row(h, p, nl + 1);
		p = nl + 1;
	}
}

bool
rowhash_feed(rowhash *h, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (h->failed)
		return false;
	if (!h->binary)
	{
		rowhash_feed_text(h, p, p + len);
		return true;
	}
	return rowhash_feed_binary(h, p, p + len);
}

bool
rowhash_finish(rowhash *h)
{
	if (h->failed)
		return false;
	if (h->in_row)
	{
		snprintf(h->error, sizeof(h->error), "the COPY data ended within a row");
		return false;
	}
	if (h->binary && h->phase != RH_END)
	{
		snprintf(h->error, sizeof(h->error), "the binary COPY data ended without its trailer");
		return false;
	}
	return true;
}
