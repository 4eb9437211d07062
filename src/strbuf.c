/*
 * strbuf.c — the growable byte buffer (see strbuf.h).
 *
 * Owns: each buffer's data area. Never: aborts on allocation failure, or
 * changes the contents when an append fails.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

#define STRBUF_MIN_CAP 256

static const char strbuf_hexdigits[] = "0123456789abcdef";

/* Set up an empty buffer. */
void
strbuf_init(strbuf *sb)
{
	sb->data = NULL;
	sb->len = 0;
	sb->cap = 0;
}

/* Free the data area and leave an empty buffer. */
void
strbuf_free(strbuf *sb)
{
	free(sb->data);
	strbuf_init(sb);
}

/* Empty the buffer, keeping the capacity. */
void
strbuf_reset(strbuf *sb)
{
	strbuf_truncate(sb, 0);
}

/* Cut the contents back to len bytes. */
void
strbuf_truncate(strbuf *sb, size_t len)
{
	if (len >= sb->len)
		return;
	sb->len = len;
	sb->data[len] = '\0';
}

/* The contents, NUL-terminated. */
const char *
strbuf_data(const strbuf *sb)
{
	return sb->data ? sb->data : "";
}

/* Number of bytes in the buffer. */
size_t
strbuf_len(const strbuf *sb)
{
	return sb->len;
}

/* Grow the data area so extra more bytes and the NUL fit. */
bool
strbuf_reserve(strbuf *sb, size_t extra)
{
	size_t need;
	size_t cap;
	char *data;

	if (extra > SIZE_MAX - 1 - sb->len)
		return false;
	need = sb->len + extra + 1;
	if (need <= sb->cap)
		return true;
	cap = sb->cap ? sb->cap : STRBUF_MIN_CAP;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	data = realloc(sb->data, cap);
	if (data == NULL)
		return false;
	if (sb->data == NULL)
		data[0] = '\0';
	sb->data = data;
	sb->cap = cap;
	return true;
}

/* Append len raw bytes. */
bool
strbuf_append(strbuf *sb, const void *data, size_t len)
{
	if (!strbuf_reserve(sb, len))
		return false;
	if (len > 0)
		memcpy(sb->data + sb->len, data, len);
	sb->len += len;
	sb->data[sb->len] = '\0';
	return true;
}

/* Append one byte. */
bool
strbuf_append_char(strbuf *sb, char c)
{
	if (!strbuf_reserve(sb, 1))
		return false;
	sb->data[sb->len++] = c;
	sb->data[sb->len] = '\0';
	return true;
}

/* Append a NUL-terminated string. */
bool
strbuf_append_cstr(strbuf *sb, const char *s)
{
	return strbuf_append(sb, s, strlen(s));
}

/* Append printf-style text: format into the spare room, grow and retry if short. */
bool
strbuf_appendf(strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!strbuf_reserve(sb, 64))
		return false;
	va_start(ap, fmt);
	n = vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap);
	va_end(ap);
	if (n < 0)
	{
		sb->data[sb->len] = '\0';
		return false;
	}
	if ((size_t)n >= sb->cap - sb->len)
	{
		sb->data[sb->len] = '\0';
		if (!strbuf_reserve(sb, (size_t)n))
			return false;
		va_start(ap, fmt);
		n = vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap);
		va_end(ap);
		if (n < 0 || (size_t)n >= sb->cap - sb->len)
		{
			sb->data[sb->len] = '\0';
			return false;
		}
	}
	sb->len += (size_t)n;
	return true;
}

/* Whether c is a byte the escaping functions treat as a control byte. */
static bool
strbuf_is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Whether c is printable ASCII that needs no escape as JSON (json) or C-style text. */
static inline bool
strbuf_is_plain(unsigned char c, bool json)
{
	return c >= 0x20 && c < 0x7f && c != '\\' && (!json || c != '"');
}

/* Length of the valid UTF-8 sequence at s, or 0 (RFC 3629, table 3-7 of Unicode). */
size_t
strbuf_utf8_seqlen(const unsigned char *s, size_t len)
{
	unsigned char c;
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (len == 0)
		return 0;
	c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
	{
		n = 3;
		if (c == 0xe0)
			lo = 0xa0; /* no overlong forms */
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	}
	else if (c >= 0xf0 && c <= 0xf4)
	{
		n = 4;
		if (c == 0xf0)
			lo = 0x90; /* no overlong forms */
		else if (c == 0xf4)
			hi = 0x8f; /* nothing above U+10FFFF */
	}
	else
		return 0; /* continuation byte, 0xc0/0xc1, or 0xf5..0xff */
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* Whether all len bytes are valid UTF-8. */
bool
strbuf_utf8_valid(const char *data, size_t len)
{
	const unsigned char *p = (const unsigned char *)data;
	size_t i = 0;

	while (i < len)
	{
		size_t n = strbuf_utf8_seqlen(p + i, len - i);

		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* The short C escape letter of a control byte, or 0 if it has none. */
static char
strbuf_short_escape(unsigned char c)
{
	switch (c)
	{
		case '\n':
			return 'n';
		case '\r':
			return 'r';
		case '\t':
			return 't';
		case '\b':
			return 'b';
		case '\f':
			return 'f';
		default:
			return 0;
	}
}

/* Append a control byte as \n-style escape or \xHH (room already reserved). */
static void
strbuf_put_c_escape(strbuf *sb, unsigned char c)
{
	char letter = strbuf_short_escape(c);

	sb->data[sb->len++] = '\\';
	if (letter)
		sb->data[sb->len++] = letter;
	else
	{
		sb->data[sb->len++] = 'x';
		sb->data[sb->len++] = strbuf_hexdigits[c >> 4];
		sb->data[sb->len++] = strbuf_hexdigits[c & 0xf];
	}
}

/* Append len bytes as an SQL literal, in E'' form when it holds control bytes. */
bool
strbuf_append_sql_literal(strbuf *sb, const char *data, size_t len)
{
	const unsigned char *p = (const unsigned char *)data;
	bool escape_form = false;
	size_t quotes = 0;

	if (len > (SIZE_MAX - 3) / 4)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		if (strbuf_is_control(p[i]))
			escape_form = true;
		else if (p[i] == '\'')
			quotes++;
	}
	/* escape form: at most 4 bytes per input byte (\xHH), plus E and the quotes */
	if (!strbuf_reserve(sb, escape_form ? 4 * len + 3 : len + quotes + 2))
		return false;
	if (escape_form)
		sb->data[sb->len++] = 'E';
	sb->data[sb->len++] = '\'';
	if (!escape_form && quotes == 0)
	{
		/* the common case: nothing to double, one copy */
		if (len > 0)
			memcpy(sb->data + sb->len, p, len);
		sb->len += len;
	}
	else
	{
		for (size_t i = 0; i < len; i++)
		{
			unsigned char c = p[i];

			if (escape_form && strbuf_is_control(c))
				strbuf_put_c_escape(sb, c);
			else
			{
				if (c == '\'' || (escape_form && c == '\\'))
					sb->data[sb->len++] = (char)c; /* doubled */
				sb->data[sb->len++] = (char)c;
			}
		}
	}
	sb->data[sb->len++] = '\'';
	sb->data[sb->len] = '\0';
	return true;
}

/*
 * Escape len bytes for JSON (json) or as C-style text into dst, or only count
 * the output bytes when dst is NULL; returns the count. One walk for both, so
 * sizing and writing cannot disagree.
 */
static size_t
strbuf_escape_walk(char *dst, const unsigned char *p, size_t len, bool json)
{
	size_t out = 0;
	size_t i = 0;

	while (i < len)
	{
		unsigned char c;
		size_t n;
		size_t run = i;
		char esc[6];
		size_t esclen = 0;

		/* the common case: a run of printable ASCII that needs nothing */
		while (run < len && strbuf_is_plain(p[run], json))
			run++;
		if (run > i)
		{
			if (dst)
				memcpy(dst + out, p + i, run - i);
			out += run - i;
			i = run;
			continue;
		}
		c = p[i];
		n = c < 0x80 ? 1 : strbuf_utf8_seqlen(p + i, len - i);
		if (c == '\\' || (json && c == '"'))
		{
			esc[esclen++] = '\\';
			esc[esclen++] = (char)c;
		}
		else if (!json && strbuf_short_escape(c))
		{
			esc[esclen++] = '\\';
			esc[esclen++] = strbuf_short_escape(c);
		}
		else if (n == 0 || strbuf_is_control(c))
		{
			/* control byte, or not UTF-8: JSON reads it as Latin-1, text shows the byte */
			memcpy(esc, json ? "\\u00" : "\\x", json ? 4 : 2);
			esclen = json ? 4 : 2;
			esc[esclen++] = strbuf_hexdigits[c >> 4];
			esc[esclen++] = strbuf_hexdigits[c & 0xf];
			n = 1;
		}
		if (esclen > 0)
		{
			if (dst)
				memcpy(dst + out, esc, esclen);
			out += esclen;
		}
		else
		{
			if (dst)
				memcpy(dst + out, p + i, n);
			out += n;
		}
		i += n;
	}
	return out;
}

/* Append len bytes escaped by strbuf_escape_walk, quoted when quote is nonzero. */
static bool
strbuf_append_walk(strbuf *sb, const char *data, size_t len, bool json, char quote)
{
	const unsigned char *p = (const unsigned char *)data;
	size_t q = quote ? 2 : 0;
	size_t n;

	/* don't believe nonsense: no output can be 6 times larger than the address space */
	if (len > (SIZE_MAX - q) / 6)
		return false;
	for (n = 0; n < len && strbuf_is_plain(p[n], json); n++)
		;
	if (n < len)
		n = strbuf_escape_walk(NULL, p, len, json); /* something to escape: size it exactly */
	if (!strbuf_reserve(sb, n + q))
		return false;
	if (quote)
		sb->data[sb->len++] = quote;
	if (n == len)
	{
		if (len > 0)
			memcpy(sb->data + sb->len, p, len);
		sb->len += len;
	}
	else
		sb->len += strbuf_escape_walk(sb->data + sb->len, p, len, json);
	if (quote)
		sb->data[sb->len++] = quote;
	sb->data[sb->len] = '\0';
	return true;
}

/* Append len bytes as a quoted JSON string that is always valid JSON. */
bool
strbuf_append_json_string(strbuf *sb, const char *data, size_t len)
{
	return strbuf_append_walk(sb, data, len, true, '"');
}

/* Append len bytes as C-style escaped text. */
bool
strbuf_append_escaped(strbuf *sb, const char *data, size_t len)
{
	return strbuf_append_walk(sb, data, len, false, 0);
}

/* Append len bytes as lowercase hex. */
bool
strbuf_append_hex(strbuf *sb, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (len > SIZE_MAX / 2 || !strbuf_reserve(sb, len * 2))
		return false;
	for (size_t i = 0; i < len; i++)
	{
		sb->data[sb->len++] = strbuf_hexdigits[p[i] >> 4];
		sb->data[sb->len++] = strbuf_hexdigits[p[i] & 0xf];
	}
	sb->data[sb->len] = '\0';
	return true;
}
