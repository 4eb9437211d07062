/*
 * cli.h — helpers the commands share for their arguments: sizes, integers,
 * LSNs, and the time.
 *
 * Owns: nothing. Never: prints; callers word their own one-line errors.
 */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgdbm_attr.h"

/* A size like 64MB, 512k, 1G, 16MiB or plain bytes. */
PGDBM_MUST_CHECK bool cli_parse_size(const char *text, size_t *out);

/* A whole integer in [lo, hi]. */
PGDBM_MUST_CHECK bool cli_parse_int(const char *text, int lo, int hi, int *out);

/* Milliseconds of a monotonic clock. */
int64_t cli_now_ms(void);

#endif /* CLI_H */
