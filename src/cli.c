/*
 * cli.c — argument helpers shared by the commands (see cli.h).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"

/* Parse a size like 64MB, 512k, 1G or plain bytes. */
bool
cli_parse_size(const char *text, size_t *out)
{
	char *end;
	unsigned long long v;
	unsigned long long mult = 1;

	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end == text || text[0] == '-')
		return false;
	if (*end == 'k' || *end == 'K')
		mult = 1024ULL;
	else if (*end == 'm' || *end == 'M')
		mult = 1024ULL * 1024;
	else if (*end == 'g' || *end == 'G')
		mult = 1024ULL * 1024 * 1024;
	else if (*end != '\0')
		return false;
	if (*end != '\0')
	{
		end++;
		if ((*end == 'b' || *end == 'B'))
			end++;
		if (*end == 'i' && (end[1] == 'B' || end[1] == 'b'))
			end += 2;
		if (*end != '\0')
			return false;
	}
	if (v > SIZE_MAX / mult)
		return false;
	*out = (size_t)(v * mult);
	return true;
}

/* Parse a whole non-negative int in [lo, hi]. */
bool
cli_parse_int(const char *text, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || end == text || *end != '\0' || v < lo || v > hi)
		return false;
	*out = (int)v;
	return true;
}

/* Milliseconds of a monotonic clock. */
int64_t
cli_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
