/*
 * coltypes.h — the column types the real-server tests write and read back:
 * numbers with NaN and infinities, text with quotes, newlines and unicode,
 * bytea, times with zones, json, arrays, an enum (mood), a composite (pair),
 * ranges and NULL. Each test creates mood and pair first.
 */
#ifndef COLTYPES_H
#define COLTYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define COLTYPES_DDL \
	"CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE TYPE pair AS (a int, b text)"

/* The columns of t_types: name, type, SQL literal. */
static const struct coltype
{
	const char *name;
	const char *type;
	const char *literal;
} columns[] = {
    {"id", "int4", "1"},
    {"i2", "int2", "-32768"},
    {"i8", "int8", "9223372036854775807"},
    {"num", "numeric", "12345.678900"},
    {"num_nan", "numeric", "'NaN'"},
    {"f8", "float8", "'-Infinity'"},
    {"txt", "text",
     "E'quote '' dq \" nl \\n tab \\t unicode \u00fcn\u00ef \u65e5\u672c \U0001F418'"},
    {"by", "bytea", "'\\x00ff10'"},
    {"b", "bool", "true"},
    {"ts", "timestamptz", "'2026-11-24 14:00:00.123456+05:30'"},
    {"iv", "interval", "'1 year 2 mons 3 days 04:05:06.789'"},
    {"u", "uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"},
    {"js", "json", "'{\"k\": [1, 2, {\"x\": null}]}'"},
    {"jb", "jsonb", "'{\"k\": [1, 2, {\"x\": null}]}'"},
    {"ai", "int4[]", "'{1,NULL,3}'"},
    {"at", "text[]", "'{\"a b\",\"c,d\",NULL}'"},
    {"m", "mood", "'happy'"},
    {"c", "pair", "ROW(7, 'seven')"},
    {"r", "int4range", "'[1,10)'"},
    {"tr", "tstzrange", "'[2026-01-01 00:00+00,2026-02-01 00:00+00)'"},
    {"nul", "text", "NULL"},
};
#define NCOLUMNS (sizeof(columns) / sizeof(columns[0]))

/*
 * Into sql (size bytes): "CREATE TABLE <table> (<each column> <its type>)"
 * when values is false, "INSERT INTO <table> VALUES (<each literal>)" when
 * true. Returns sql.
 */
static inline const char *
coltypes_sql(char *sql, size_t size, const char *table, bool values)
{
	size_t len = (size_t)snprintf(sql, size,
	                              values ? "INSERT INTO %s VALUES (" : "CREATE TABLE %s (", table);

	for (size_t i = 0; i < NCOLUMNS && len < size; i++)
		len += (size_t)snprintf(sql + len, size - len, "%s%s%s%s", i ? ", " : "",
		                        values ? columns[i].literal : columns[i].name, values ? "" : " ",
		                        values ? "" : columns[i].type);
	if (len < size)
		snprintf(sql + len, size - len, ")");
	return sql;
}

#endif /* COLTYPES_H */
