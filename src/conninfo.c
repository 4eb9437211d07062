/*
 * conninfo.c — split a connection string into safe text and password
 * (see conninfo.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "conninfo.h"
#include "strbuf.h"

#define CONNINFO_MASK "********"

/* Replace each occurrence of secret[0, len) in msg by the mask. */
static void
conninfo_mask(char *msg, size_t size, const char *secret, size_t len)
{
	char *out;
	size_t n = 0;

	if (len == 0 || size == 0)
		return;
	out = malloc(size);
	if (out == NULL)
	{
		/* better no detail than a password */
		snprintf(msg, size, "(details withheld: out of memory)");
		return;
	}
	for (const char *p = msg; *p && n + 1 < size;)
	{
		if (strncmp(p, secret, len) == 0)
		{
			for (const char *m = CONNINFO_MASK; *m && n + 1 < size; m++)
				out[n++] = *m;
			p += len;
		}
		else
			out[n++] = *p++;
	}
	out[n] = '\0';
	memcpy(msg, out, n + 1);
	free(out);
}

/* Mask the value after a "password" keyword at p (key = value, or ?password= in a URI). */
static void
conninfo_mask_keyword(const char *p, bool uri, char *msg, size_t size)
{
	const char *v;
	size_t len = 0;

	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p != '=')
		return;
	p++;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	v = p;
	if (*v == '\'' && !uri)
	{
		/* quoted: up to the closing quote (or the end, when it is missing) */
		for (v++; v[len] && v[len] != '\''; len++)
			if (v[len] == '\\' && v[len + 1])
				len++;
	}
	else
		while (v[len] && v[len] != ' ' && v[len] != '\t' && v[len] != '\n' &&
		       !(uri && v[len] == '&'))
			len++;
	conninfo_mask(msg, size, v, len);
}

/* Mask every password spelled out in the raw string in (see conninfo.h). */
void
conninfo_redact(const char *in, char *msg, size_t size)
{
	const char *p = NULL;
	bool uri = false;

	if (in == NULL)
		return;
	if (strncmp(in, "postgresql://", 13) == 0)
		p = in + 13;
	else if (strncmp(in, "postgres://", 11) == 0)
		p = in + 11;
	if (p)
	{
		const char *at = p;

		uri = true;
		/* user:password@ ends where libpq looks for it: before the first '/' */
		while (*at && *at != '@' && *at != '/')
			at++;
		if (*at == '@')
		{
			const char *colon = memchr(p, ':', (size_t)(at - p));

			if (colon)
				conninfo_mask(msg, size, colon + 1, (size_t)(at - colon - 1));
		}
	}
	/* password=..., and sslpassword=... too (it ends in "password") */
	for (const char *k = strstr(in, "password"); k; k = strstr(k + 8, "password"))
		conninfo_mask_keyword(k + 8, uri, msg, size);
}

bool
conninfo_parse(const char *in, conninfo *out, char *errbuf, size_t errlen)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(in, &perr);
	strbuf sb;
	bool ok = true;

	memset(out, 0, sizeof(*out));
	if (opts == NULL)
	{
		size_t n;

		snprintf(errbuf, errlen, "invalid connection string: %s", perr ? perr : "out of memory");
		n = strlen(errbuf);
		while (n > 0 && errbuf[n - 1] == '\n')
			errbuf[--n] = '\0';
		PQfreemem(perr);
		/* libpq quotes pieces of the string, sometimes all of it */
		conninfo_redact(in, errbuf, errlen);
		return false;
	}
	strbuf_init(&sb);
	for (PQconninfoOption *o = opts; o->keyword && ok; o++)
	{
		if (o->val == NULL || o->val[0] == '\0')
			continue;
		if (strcmp(o->keyword, "password") == 0)
		{
			out->password = strdup(o->val);
			ok = out->password != NULL;
			continue;
		}
		ok = strbuf_appendf(&sb, "%s%s='", strbuf_len(&sb) ? " " : "", o->keyword);
		for (const char *p = o->val; ok && *p; p++)
			ok = (*p == '\'' || *p == '\\' ? strbuf_append_char(&sb, '\\') : true) &&
			     strbuf_append_char(&sb, *p);
		ok = ok && strbuf_append_char(&sb, '\'');
	}
	PQconninfoFree(opts);
	if (ok)
		out->safe = strdup(strbuf_data(&sb));
	strbuf_free(&sb);
	if (!ok || out->safe == NULL)
	{
		conninfo_free(out);
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	return true;
}

void
conninfo_free(conninfo *ci)
{
	free(ci->safe);
	if (ci->password)
	{
		memset(ci->password, 0, strlen(ci->password));
		free(ci->password);
	}
	ci->safe = NULL;
	ci->password = NULL;
}
