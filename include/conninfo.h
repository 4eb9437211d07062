/*
 * conninfo.h — a connection string taken apart so its password can travel
 * apart from it: child processes get the rest on their command line and the
 * password in PGPASSWORD; logs and events get the rest only.
 *
 * Owns: the strings it makes (conninfo_free). Never: puts the password in
 * safe.
 */
#ifndef CONNINFO_H
#define CONNINFO_H

#include <stdbool.h>
#include <stddef.h>

typedef struct conninfo
{
	char *safe;     /* malloc'd: "key='value' ..." without the password */
	char *password; /* malloc'd, or NULL when the string has none */
} conninfo;

/* Parse any libpq connection string or URI; false with a message if it does not parse. */
bool conninfo_parse(const char *in, conninfo *out, char *errbuf, size_t errlen);

/* Free what conninfo_parse made (safe on a zeroed struct). */
void conninfo_free(conninfo *ci);

#endif /* CONNINFO_H */
