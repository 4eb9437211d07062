/*
 * conninfo.h — a connection string taken apart so its password can travel
 * apart from it: child processes get the rest on their command line and the
 * password in PGPASSWORD; logs and events get the rest only.
 *
 * Owns: the strings it makes (conninfo_free). Never: puts the password in
 * safe, or in a message about a string that does not parse.
 */
#ifndef CONNINFO_H
#define CONNINFO_H

#include <stdbool.h>
#include <stddef.h>

#include "pgdbm_attr.h"

typedef struct conninfo
{
	char *safe;     /* malloc'd: "key='value' ..." without the password */
	char *password; /* malloc'd, or NULL when the string has none */
} conninfo;

/* Parse any libpq connection string or URI; false with a message if it does not parse. */
PGDBM_MUST_CHECK bool conninfo_parse(const char *in, conninfo *out, char *errbuf, size_t errlen);

/*
 * Mask in msg (NUL-terminated, size bytes) every password that the raw
 * connection string in spells out: libpq's parse errors quote pieces of the
 * string, sometimes all of it. For any message about a string that did not
 * parse.
 */
void conninfo_redact(const char *in, char *msg, size_t size);

/* Free what conninfo_parse made (safe on a zeroed struct). */
void conninfo_free(conninfo *ci);

#endif /* CONNINFO_H */
