/*
 * ddl.c — schema changes replicated in stream order (see ddl.h): the
 * capture's SQL on the source, the parser of its messages, the SQL lexer, and
 * the replay decision. All pure.
 *
 * Owns: the strings of a parsed ddl_msg. Never: talks to a server or prints.
 */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddl.h"

/* ------------------------------------------------------- the source's SQL */

/* Drop one capture object, first taking it out of plpgsql when it is a member. */
#define DDL_REMOVE_BODY                                                                          \
	"SET LOCAL pg_dbmigrator.ddl_off = on;\n"                                                    \
	"DO $pgdbm$\n"                                                                               \
	"BEGIN\n"                                                                                    \
	"  IF EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname = '" DDL_TRIGGER_END     \
	"') THEN\n"                                                                                  \
	"    BEGIN ALTER EXTENSION plpgsql DROP EVENT TRIGGER " DDL_TRIGGER_END ";\n"                \
	"    EXCEPTION WHEN OTHERS THEN NULL; END;\n"                                                \
	"    DROP EVENT TRIGGER " DDL_TRIGGER_END ";\n"                                              \
	"  END IF;\n"                                                                                \
	"  IF EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname = '" DDL_TRIGGER_DROP    \
	"') THEN\n"                                                                                  \
	"    BEGIN ALTER EXTENSION plpgsql DROP EVENT TRIGGER " DDL_TRIGGER_DROP ";\n"               \
	"    EXCEPTION WHEN OTHERS THEN NULL; END;\n"                                                \
	"    DROP EVENT TRIGGER " DDL_TRIGGER_DROP ";\n"                                             \
	"  END IF;\n"                                                                                \
	"  IF EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname = '" DDL_TRIGGER_REWRITE \
	"') THEN\n"                                                                                  \
	"    BEGIN ALTER EXTENSION plpgsql DROP EVENT TRIGGER " DDL_TRIGGER_REWRITE ";\n"            \
	"    EXCEPTION WHEN OTHERS THEN NULL; END;\n"                                                \
	"    DROP EVENT TRIGGER " DDL_TRIGGER_REWRITE ";\n"                                          \
	"  END IF;\n"                                                                                \
	"  IF pg_catalog.to_regprocedure('" DDL_PUBLISH_HOOK "(oid)') IS NOT NULL THEN\n"            \
	"    BEGIN ALTER EXTENSION plpgsql DROP FUNCTION " DDL_PUBLISH_HOOK "(oid);\n"               \
	"    EXCEPTION WHEN OTHERS THEN NULL; END;\n"                                                \
	"    DROP FUNCTION " DDL_PUBLISH_HOOK "(oid);\n"                                             \
	"  END IF;\n"                                                                                \
	"  IF pg_catalog.to_regprocedure('" DDL_FUNCTION "()') IS NOT NULL THEN\n"                   \
	"    BEGIN ALTER EXTENSION plpgsql DROP FUNCTION " DDL_FUNCTION "();\n"                      \
	"    EXCEPTION WHEN OTHERS THEN NULL; END;\n"                                                \
	"    DROP FUNCTION " DDL_FUNCTION "();\n"                                                    \
	"  END IF;\n"                                                                                \
	"  IF EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = '" DDL_SCHEMA "') THEN\n"  \
	"    BEGIN ALTER EXTENSION plpgsql DROP SCHEMA " DDL_SCHEMA ";\n"                            \
	"    EXCEPTION WHEN OTHERS THEN NULL; END;\n"                                                \
	"    DROP SCHEMA " DDL_SCHEMA ";\n"                                                          \
	"  END IF;\n"                                                                                \
	"END\n"                                                                                      \
	"$pgdbm$;\n"

const char ddl_remove_sql[] = DDL_REMOVE_BODY;

/*
 * The capture. The function never lets an error of its own reach the
 * application's DDL: its body runs in a block that catches every error and
 * then emits a message carrying it, so the apply stops instead of missing the
 * command. Publications, subscriptions and event triggers stay the source's;
 * temporary objects and the tool's own schema are left out. For each object
 * touched it rebuilds what the target needs from the catalog: an index's or
 * view's or function's definition, a sequence's parameters, and for a table a
 * DO block that brings the target's table to the source's columns, defaults,
 * NOT NULL and constraints (and refuses when the target has a column the
 * source no longer has: a rename cannot be told from a drop there).
 * Never break the source: a published table left without a key by the command
 * (CREATE TABLE of a keyless table under FOR ALL TABLES, a dropped primary
 * key) would make the application's UPDATE and DELETE fail; the capture sets
 * its REPLICA IDENTITY FULL in the same transaction, only under an
 * ACCESS EXCLUSIVE lock the command already holds (a new table, or an ALTER
 * that took it: nothing waits), and the message's "after" list replays that
 * on the target.
 */
const char ddl_install_sql[] = DDL_REMOVE_BODY
    "SET LOCAL pg_dbmigrator.ddl_off = on;\n"
    "CREATE SCHEMA _pg_dbmigrator;\n"
    "GRANT USAGE ON SCHEMA _pg_dbmigrator TO PUBLIC;\n"
    "CREATE FUNCTION _pg_dbmigrator.ddl_capture() RETURNS event_trigger LANGUAGE plpgsql AS "
    "$pgdbm$\n"
    "DECLARE\n"
    "  r record;\n"
    "  c record;\n"
    "  cmds jsonb := '[]';\n"
    "  defs jsonb := '[]';\n"
    "  drops jsonb := '[]';\n"
    "  nodef text;\n"
    "  temps boolean := false;\n"
    "  schemas jsonb := '[]';\n"
    "  payload text;\n"
    "  bytes bytea;\n"
    "  volatile text;\n"
    "  d text;\n"
    "  spec jsonb;\n"
    "  after jsonb := '[]';\n"
    "BEGIN\n"
    "  IF pg_catalog.current_setting('pg_dbmigrator.ddl_off', true) = 'on' THEN\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  IF TG_TAG IN ('CREATE PUBLICATION', 'ALTER PUBLICATION', 'DROP PUBLICATION',\n"
    "                'CREATE SUBSCRIPTION', 'ALTER SUBSCRIPTION', 'DROP SUBSCRIPTION',\n"
    "                'CREATE EVENT TRIGGER', 'ALTER EVENT TRIGGER', 'DROP EVENT TRIGGER') THEN\n"
    "    RETURN;\n"
    "  END IF;\n"
    "  BEGIN\n"
    "    IF TG_EVENT = 'table_rewrite' THEN\n"
    "      -- a volatile default computed for the rows already there: values the stream never "
    "carries\n"
    "      IF pg_catalog.pg_event_trigger_table_rewrite_reason() & 2 <> 0 THEN\n"
    "        EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM %s)',\n"
    "                                  "
    "pg_catalog.pg_event_trigger_table_rewrite_oid()::pg_catalog.regclass)\n"
    "          INTO temps;\n"
    "        IF temps THEN\n"
    "          volatile := pg_catalog.current_setting('pg_dbmigrator.ddl_volatile', true);\n"
    "          PERFORM pg_catalog.set_config('pg_dbmigrator.ddl_volatile', pg_catalog.concat_ws(', "
    "',\n"
    "            CASE WHEN volatile <> '' THEN volatile END,\n"
    "            pg_catalog.pg_event_trigger_table_rewrite_oid()::pg_catalog.regclass::text), "
    "true);\n"
    "        END IF;\n"
    "      END IF;\n"
    "      RETURN;\n"
    "    END IF;\n"
    "    IF TG_EVENT = 'sql_drop' THEN\n"
    "      FOR r IN SELECT * FROM pg_catalog.pg_event_trigger_dropped_objects()\n"
    "               WHERE original LOOP\n"
    "        IF r.is_temporary THEN\n"
    "          temps := true;\n"
    "          CONTINUE;\n"
    "        END IF;\n"
    "        IF r.object_type = 'table column' THEN\n"
    "          d := pg_catalog.format('ALTER TABLE %I.%I DROP COLUMN IF EXISTS %I',\n"
    "                                 r.address_names[1], r.address_names[2], "
    "r.address_names[3]);\n"
    "        ELSIF r.object_type = 'table constraint' THEN\n"
    "          d := pg_catalog.format('ALTER TABLE %I.%I DROP CONSTRAINT IF EXISTS %I',\n"
    "                                 r.address_names[1], r.address_names[2], "
    "r.address_names[3]);\n"
    "        ELSIF r.object_type IN ('table', 'view', 'materialized view', 'index', 'sequence',\n"
    "                                'function', 'procedure', 'aggregate', 'type', 'schema',\n"
    "                                'foreign table', 'domain collation') THEN\n"
    "          d := pg_catalog.format('DROP %s IF EXISTS %s CASCADE', "
    "pg_catalog.upper(r.object_type),\n"
    "                                 r.object_identity);\n"
    "        ELSE\n"
    "          d := NULL;\n"
    "          nodef := pg_catalog.concat_ws(', ', nodef, r.object_type || ' ' || "
    "r.object_identity);\n"
    "        END IF;\n"
    "        IF d IS NOT NULL THEN\n"
    "          drops := drops || pg_catalog.to_jsonb(d);\n"
    "        END IF;\n"
    "        schemas := schemas || pg_catalog.to_jsonb(COALESCE(r.schema_name,\n"
    "                     CASE WHEN r.object_type = 'schema' THEN r.object_name END, ''));\n"
    "      END LOOP;\n"
    "      PERFORM pg_catalog.set_config('pg_dbmigrator.ddl_drops', "
    "pg_catalog.jsonb_build_object(\n"
    "        'defs', drops, 'nodef', nodef, 'temps', temps, 'schemas', schemas)::text, true);\n"
    "      RETURN;\n"
    "    END IF;\n"
    "    volatile := pg_catalog.current_setting('pg_dbmigrator.ddl_volatile', true);\n"
    "    IF volatile = '' THEN\n"
    "      volatile := NULL;\n"
    "    ELSE\n"
    "      PERFORM pg_catalog.set_config('pg_dbmigrator.ddl_volatile', '', true);\n"
    "    END IF;\n"
    "    d := pg_catalog.current_setting('pg_dbmigrator.ddl_drops', true);\n"
    "    spec := CASE WHEN d <> '' THEN d::jsonb END;\n"
    "    IF spec IS NOT NULL THEN\n"
    "      PERFORM pg_catalog.set_config('pg_dbmigrator.ddl_drops', '', true);\n"
    "      defs := spec->'defs';\n"
    "      schemas := spec->'schemas';\n"
    "      nodef := spec->>'nodef';\n"
    "      temps := (spec->>'temps')::boolean;\n"
    "    END IF;\n"
    "    FOR r IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands() LOOP\n"
    "      -- large objects, their owners and grants: the LargeObjects phase carries them at\n"
    "      -- the cutover (an object made while streaming is not on the target before then)\n"
    "      IF pg_catalog.lower(r.object_type) = 'large object' THEN\n"
    "        temps := true;\n"
    "        CONTINUE;\n"
    "      END IF;\n"
    "      IF r.schema_name IS NOT NULL AND (r.schema_name = '_pg_dbmigrator' OR r.schema_name "
    "LIKE 'pg\\_temp%') THEN\n"
    "        temps := true;\n"
    "        CONTINUE;\n"
    "      END IF;\n"
    "      schemas := schemas || pg_catalog.to_jsonb(COALESCE(r.schema_name,\n"
    "                   CASE WHEN r.object_type = 'schema' THEN r.object_identity END, ''));\n"
    "      cmds := cmds || pg_catalog.jsonb_build_array(r.command_tag || ' ' || r.object_type || ' "
    "' || COALESCE(r.object_identity, ''));\n"
    "      d := NULL;\n"
    "      IF r.object_type = 'table' AND r.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', "
    "'SELECT INTO')\n"
    "         AND pg_catalog.to_regprocedure('_pg_dbmigrator.ddl_publish_new(oid)') IS NOT NULL "
    "THEN\n"
    "        -- a list publication: a new table in the migration's schemas joins it in this "
    "transaction\n"
    "        EXECUTE 'SELECT _pg_dbmigrator.ddl_publish_new($1)' USING r.objid;\n"
    "      END IF;\n"
    "      IF r.object_type = 'table' AND r.command_tag IN ('CREATE TABLE', 'ALTER TABLE')\n"
    "         AND NOT EXISTS (SELECT FROM pg_catalog.pg_class pc WHERE pc.oid = r.objid\n"
    "                         AND (pc.relispartition OR pc.relkind = 'p' OR EXISTS (\n"
    "                           SELECT FROM pg_catalog.pg_inherits ih WHERE ih.inhrelid = "
    "pc.oid))) THEN\n"
    "        -- partitions and inheritance are left to the text: the DO block knows only columns\n"
    "        SELECT pg_catalog.jsonb_build_object(\n"
    "                 'cols', COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(\n"
    "                     a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), "
    "a.attnotnull,\n"
    "                     pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, "
    "a.attgenerated)\n"
    "                   ORDER BY a.attnum)\n"
    "                   FROM pg_catalog.pg_attribute a\n"
    "                   LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum "
    "= a.attnum\n"
    "                   WHERE a.attrelid = r.objid AND a.attnum > 0 AND NOT a.attisdropped), "
    "'[]'),\n"
    "                 'cons', COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(\n"
    "                     co.conname, pg_catalog.pg_get_constraintdef(co.oid)) ORDER BY "
    "co.conname)\n"
    "                   FROM pg_catalog.pg_constraint co WHERE co.conrelid = r.objid AND "
    "co.contype <> 'f'), '[]'))\n"
    "          INTO spec;\n"
    "        d := pg_catalog.format($f$DO $pgdbm_sync$\n"
    "DECLARE\n"
    "  relname text := %L;\n"
    "  spec jsonb := %L;\n"
    "  rel regclass;\n"
    "  col jsonb;\n"
    "  cur record;\n"
    "  extra text;\n"
    "  coldef text;\n"
    "BEGIN\n"
    "  IF pg_catalog.to_regclass(relname) IS NULL THEN\n"
    "    EXECUTE 'CREATE TABLE ' || relname || ' ()';\n"
    "  END IF;\n"
    "  rel := relname::regclass;\n"
    "  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ') INTO extra\n"
    "    FROM pg_catalog.pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT "
    "a.attisdropped\n"
    "     AND a.attname NOT IN (SELECT c->>0 FROM pg_catalog.jsonb_array_elements(spec->'cols') "
    "c);\n"
    "  IF extra IS NOT NULL THEN\n"
    "    RAISE EXCEPTION 'column(s) %% of %% are on the target but no longer on the source "
    "(renamed or dropped where the tool could not tell which)', extra, relname;\n"
    "  END IF;\n"
    "  FOR col IN SELECT * FROM pg_catalog.jsonb_array_elements(spec->'cols') LOOP\n"
    "    SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) AS typ, a.attnotnull AS notnull,\n"
    "           pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS def, a.attidentity AS ident, "
    "a.attgenerated AS gen\n"
    "      INTO cur FROM pg_catalog.pg_attribute a\n"
    "      LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum\n"
    "     WHERE a.attrelid = rel AND a.attname = col->>0 AND NOT a.attisdropped;\n"
    "    IF NOT FOUND THEN\n"
    "      coldef := pg_catalog.quote_ident(col->>0) || ' ' || (col->>1);\n"
    "      IF col->>5 = 's' THEN\n"
    "        coldef := coldef || ' GENERATED ALWAYS AS (' || (col->>3) || ') STORED';\n"
    "      ELSIF col->>4 = 'a' THEN\n"
    "        coldef := coldef || ' GENERATED ALWAYS AS IDENTITY';\n"
    "      ELSIF col->>4 = 'd' THEN\n"
    "        coldef := coldef || ' GENERATED BY DEFAULT AS IDENTITY';\n"
    "      ELSIF col->>3 IS NOT NULL THEN\n"
    "        coldef := coldef || ' DEFAULT ' || (col->>3);\n"
    "      END IF;\n"
    "      IF (col->>2)::boolean AND col->>4 = '' THEN\n"
    "        coldef := coldef || ' NOT NULL';\n"
    "      END IF;\n"
    "      EXECUTE 'ALTER TABLE ' || rel || ' ADD COLUMN ' || coldef;\n"
    "      CONTINUE;\n"
    "    END IF;\n"
    "    IF cur.typ <> col->>1 THEN\n"
    "      EXECUTE pg_catalog.format('ALTER TABLE %%s ALTER COLUMN %%I TYPE %%s', rel, col->>0, "
    "col->>1);\n"
    "    END IF;\n"
    "    IF cur.gen = '' AND cur.ident = '' AND col->>4 = '' AND col->>5 = ''\n"
    "       AND cur.def IS DISTINCT FROM col->>3 THEN\n"
    "      IF col->>3 IS NULL THEN\n"
    "        EXECUTE pg_catalog.format('ALTER TABLE %%s ALTER COLUMN %%I DROP DEFAULT', rel, "
    "col->>0);\n"
    "      ELSE\n"
    "        EXECUTE pg_catalog.format('ALTER TABLE %%s ALTER COLUMN %%I SET DEFAULT %%s', rel, "
    "col->>0, col->>3);\n"
    "      END IF;\n"
    "    END IF;\n"
    "    IF cur.notnull <> (col->>2)::boolean THEN\n"
    "      EXECUTE pg_catalog.format('ALTER TABLE %%s ALTER COLUMN %%I %%s NOT NULL', rel, "
    "col->>0,\n"
    "                                CASE WHEN (col->>2)::boolean THEN 'SET' ELSE 'DROP' END);\n"
    "    END IF;\n"
    "  END LOOP;\n"
    "  FOR col IN SELECT * FROM pg_catalog.jsonb_array_elements(spec->'cons') LOOP\n"
    "    IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint co WHERE co.conrelid = rel AND "
    "co.conname = col->>0) THEN\n"
    "      EXECUTE pg_catalog.format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s', rel, col->>0, "
    "col->>1);\n"
    "    END IF;\n"
    "  END LOOP;\n"
    "END\n"
    "$pgdbm_sync$$f$, r.object_identity, spec::text);\n"
    "      ELSIF r.object_type = 'index' THEN\n"
    "        IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint co WHERE co.conindid = r.objid "
    "AND co.contype IN ('p', 'u', 'x')) THEN\n"
    "          d := pg_catalog.pg_get_indexdef(r.objid);\n"
    "        ELSE\n"
    "          d := '';\n"
    "        END IF;\n"
    "      ELSIF r.object_type = 'view' AND r.command_tag LIKE 'CREATE%' THEN\n"
    "        d := pg_catalog.format('CREATE OR REPLACE VIEW %s AS %s', r.object_identity, "
    "pg_catalog.pg_get_viewdef(r.objid));\n"
    "      ELSIF r.object_type = 'materialized view' AND r.command_tag = 'CREATE MATERIALIZED "
    "VIEW' THEN\n"
    "        d := pg_catalog.format('CREATE MATERIALIZED VIEW %s AS %s', r.object_identity, "
    "pg_catalog.pg_get_viewdef(r.objid));\n"
    "      ELSIF r.object_type = 'sequence' AND r.command_tag IN ('CREATE SEQUENCE', 'ALTER "
    "SEQUENCE') THEN\n"
    "        IF EXISTS (SELECT FROM pg_catalog.pg_depend dp WHERE dp.classid = "
    "'pg_catalog.pg_class'::pg_catalog.regclass\n"
    "                   AND dp.objid = r.objid AND dp.deptype = 'i') THEN\n"
    "          d := '';\n"
    "        ELSE\n"
    "          SELECT pg_catalog.format('%s SEQUENCE %s%s AS %s INCREMENT BY %s MINVALUE %s "
    "MAXVALUE %s %s CACHE %s %sCYCLE%s',\n"
    "                   pg_catalog.split_part(r.command_tag, ' ', 1),\n"
    "                   CASE WHEN r.command_tag = 'CREATE SEQUENCE' THEN 'IF NOT EXISTS ' ELSE '' "
    "END,\n"
    "                   r.object_identity, pg_catalog.format_type(s.seqtypid, NULL), "
    "s.seqincrement, s.seqmin, s.seqmax,\n"
    "                   CASE WHEN r.command_tag = 'CREATE SEQUENCE' THEN 'START WITH ' || "
    "s.seqstart ELSE '' END,\n"
    "                   s.seqcache, CASE WHEN s.seqcycle THEN '' ELSE 'NO ' END,\n"
    "                   CASE WHEN r.command_tag = 'CREATE SEQUENCE' THEN '' ELSE COALESCE((\n"
    "                     SELECT pg_catalog.format(' OWNED BY %s.%I', "
    "dp.refobjid::pg_catalog.regclass, a.attname)\n"
    "                       FROM pg_catalog.pg_depend dp JOIN pg_catalog.pg_attribute a\n"
    "                         ON a.attrelid = dp.refobjid AND a.attnum = dp.refobjsubid\n"
    "                      WHERE dp.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND "
    "dp.objid = r.objid\n"
    "                        AND dp.deptype = 'a' AND dp.refobjsubid > 0), ' OWNED BY NONE') END)\n"
    "            INTO d FROM pg_catalog.pg_sequence s WHERE s.seqrelid = r.objid;\n"
    "        END IF;\n"
    "      ELSIF r.object_type IN ('function', 'procedure') AND r.command_tag LIKE 'CREATE%' THEN\n"
    "        d := pg_catalog.pg_get_functiondef(r.objid);\n"
    "      END IF;\n"
    "      IF r.object_type = 'table' AND r.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', "
    "'SELECT INTO', 'ALTER TABLE') THEN\n"
    "        -- a published table (or a partition of it) left without a key: the application's\n"
    "        -- UPDATE and DELETE on it would fail. FULL in this transaction, under a lock it\n"
    "        -- holds (a new table, or one the ALTER locked: nothing waits); on the target too\n"
    "        FOR c IN WITH RECURSIVE tree(oid) AS (\n"
    "                   SELECT r.objid UNION ALL\n"
    "                   SELECT ih.inhrelid FROM pg_catalog.pg_inherits ih JOIN tree ON "
    "ih.inhparent = tree.oid)\n"
    "                 SELECT pg_catalog.format('%I.%I', pn.nspname, pc.relname) AS name\n"
    "                   FROM tree JOIN pg_catalog.pg_class pc ON pc.oid = tree.oid\n"
    "                   JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace\n"
    "                  WHERE pc.relkind = 'r' AND pc.relpersistence = 'p' AND pc.relreplident IN "
    "('d', 'i')\n"
    "                    AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid = "
    "pc.oid\n"
    "                                      AND CASE WHEN pc.relreplident = 'd' THEN "
    "i.indisprimary ELSE i.indisreplident END)\n"
    "                    AND EXISTS (SELECT FROM pg_catalog.pg_publication_tables pt\n"
    "                                  JOIN pg_catalog.pg_publication p ON p.pubname = "
    "pt.pubname\n"
    "                                 WHERE (p.pubupdate OR p.pubdelete) AND pt.schemaname = "
    "pn.nspname\n"
    "                                   AND pt.tablename = pc.relname)\n"
    "                    AND (r.command_tag <> 'ALTER TABLE' OR EXISTS (SELECT FROM "
    "pg_catalog.pg_locks l\n"
    "                           WHERE l.locktype = 'relation' AND l.relation = pc.oid AND l.pid = "
    "pg_catalog.pg_backend_pid()\n"
    "                             AND l.mode = 'AccessExclusiveLock' AND l.granted)) LOOP\n"
    "          PERFORM pg_catalog.set_config('pg_dbmigrator.ddl_off', 'on', true);\n"
    "          EXECUTE pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY FULL', c.name);\n"
    "          PERFORM pg_catalog.set_config('pg_dbmigrator.ddl_off', 'off', true);\n"
    "          after := after || pg_catalog.to_jsonb(pg_catalog.format('ALTER TABLE %s REPLICA "
    "IDENTITY FULL', c.name));\n"
    "        END LOOP;\n"
    "      END IF;\n"
    "      IF d IS NULL THEN\n"
    "        nodef := pg_catalog.concat_ws(', ', nodef, r.command_tag || ' ' || r.object_type || ' "
    "' || COALESCE(r.object_identity, ''));\n"
    "      ELSIF d <> '' THEN\n"
    "        defs := defs || pg_catalog.to_jsonb(d);\n"
    "      END IF;\n"
    "    END LOOP;\n"
    "    IF temps AND cmds = '[]' AND defs = '[]' AND nodef IS NULL THEN\n"
    "      RETURN;\n"
    "    END IF;\n"
    "    payload := pg_catalog.jsonb_build_object(\n"
    "      'v', 1, 'tag', TG_TAG, 'query', pg_catalog.current_query(),\n"
    "      'search_path', (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(s), ', ') FROM "
    "pg_catalog.unnest(pg_catalog.current_schemas(false)) s),\n"
    "      'role', current_user, 'commands', cmds, 'defs', defs, 'nodef', nodef,\n"
    "      'schemas', schemas, 'volatile', volatile, 'after', after)::text;\n"
    "    -- in UTF-8 whatever the database's encoding: a message's bytes are not converted\n"
    "    -- to the client's encoding as the rows are. Inside the block: SQL_ASCII text that\n"
    "    -- is not UTF-8 cannot be, and the application's DDL must not fail for it\n"
    "    bytes := pg_catalog.convert_to(payload, 'UTF8');\n"
    "  EXCEPTION WHEN OTHERS THEN\n"
    "    -- ASCII only: this text converts whatever the error quotes\n"
    "    bytes := pg_catalog.convert_to(pg_catalog.jsonb_build_object('v', 1, 'tag', TG_TAG,\n"
    "      'error', pg_catalog.regexp_replace(SQLERRM, '[^\\x01-\\x7e]', '?', 'g'))::text,\n"
    "      'UTF8');\n"
    "  END;\n"
    "  -- outside the block: a message that opens a subtransaction is decoded at its end\n"
    "  PERFORM pg_catalog.pg_logical_emit_message(true, 'pg_dbmigrator.ddl', bytes);\n"
    "END\n"
    "$pgdbm$;\n"
    "CREATE EVENT TRIGGER pg_dbmigrator_ddl_end ON ddl_command_end EXECUTE FUNCTION "
    "_pg_dbmigrator.ddl_capture();\n"
    "CREATE EVENT TRIGGER pg_dbmigrator_ddl_drop ON sql_drop EXECUTE FUNCTION "
    "_pg_dbmigrator.ddl_capture();\n"
    "CREATE EVENT TRIGGER pg_dbmigrator_ddl_rewrite ON table_rewrite EXECUTE FUNCTION "
    "_pg_dbmigrator.ddl_capture();\n"
    "ALTER EXTENSION plpgsql ADD EVENT TRIGGER pg_dbmigrator_ddl_end;\n"
    "ALTER EXTENSION plpgsql ADD EVENT TRIGGER pg_dbmigrator_ddl_drop;\n"
    "ALTER EXTENSION plpgsql ADD EVENT TRIGGER pg_dbmigrator_ddl_rewrite;\n"
    "ALTER EXTENSION plpgsql ADD FUNCTION _pg_dbmigrator.ddl_capture();\n"
    "ALTER EXTENSION plpgsql ADD SCHEMA _pg_dbmigrator;\n";

const char ddl_present_sql[] =
    "SELECT pg_catalog.count(*) FROM pg_catalog.pg_event_trigger "
    "WHERE evtname IN ('" DDL_TRIGGER_END "', '" DDL_TRIGGER_DROP "', '" DDL_TRIGGER_REWRITE "')";

const char ddl_owner_sql[] =
    "SELECT COALESCE(pg_catalog.obj_description(n.oid, 'pg_namespace'), '') "
    "FROM pg_catalog.pg_namespace n WHERE n.nspname = '" DDL_SCHEMA "'";

const char ddl_unkeyed_sql[] =
    "SELECT pg_catalog.string_agg(DISTINCT pg_catalog.format('%I.%I', n.nspname, c.relname), ', ') "
    "FROM pg_catalog.pg_publication p "
    "JOIN pg_catalog.pg_publication_tables pt ON pt.pubname = p.pubname "
    "JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname "
    "JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename "
    "WHERE p.pubname = $1 AND (p.pubupdate OR p.pubdelete) AND c.relkind = 'r' "
    "AND (c.relreplident = 'n' OR (c.relreplident IN ('d', 'i') AND NOT EXISTS ("
    "SELECT FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid "
    "AND CASE WHEN c.relreplident = 'd' THEN i.indisprimary ELSE i.indisreplident END)))";

const char ddl_allowed_sql[] =
    "SELECT r.rolsuper AND e.oid IS NOT NULL AND v.n >= 110000, "
    "  CASE WHEN v.n < 110000 THEN 'the source runs PostgreSQL ' || "
    "    pg_catalog.current_setting('server_version') || ', older than 11, which the DDL capture "
    "needs' "
    "  WHEN NOT r.rolsuper THEN 'the source role ' || pg_catalog.quote_ident(r.rolname) || "
    "    ' is not a superuser, and PostgreSQL ' || pg_catalog.current_setting('server_version') || "
    "    ' lets only superusers create the event triggers that capture DDL' "
    "  WHEN e.oid IS NULL THEN 'the source database has no plpgsql extension, which the DDL "
    "capture is written in' "
    "  ELSE '' END "
    "FROM pg_catalog.pg_roles r LEFT JOIN pg_catalog.pg_extension e ON e.extname = 'plpgsql', "
    "  (SELECT pg_catalog.current_setting('server_version_num')::int AS n) v "
    "WHERE r.rolname = current_user";

/* ------------------------------------------------------ the message (JSON) */

/* A cursor over the message's bytes. */
typedef struct ddl_json
{
	const char *p, *end;
} ddl_json;

static void
ddl_json_space(ddl_json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

/* Consume the literal word w (true, false, null). */
static bool
ddl_json_word(ddl_json *j, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
		return false;
	j->p += n;
	return true;
}

static int
ddl_hex(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* Four hex digits of a \u escape. */
static bool
ddl_json_u4(ddl_json *j, uint32_t *v)
{
	*v = 0;
	if (j->end - j->p < 4)
		return false;
	for (int i = 0; i < 4; i++)
	{
		int h = ddl_hex(j->p[i]);

		if (h < 0)
			return false;
		*v = *v * 16 + (uint32_t)h;
	}
	j->p += 4;
	return true;
}

/* Append code point cp as UTF-8 at *o. */
static char *
ddl_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80)
		*o++ = (char)cp;
	else if (cp < 0x800)
	{
		*o++ = (char)(0xC0 | (cp >> 6));
		*o++ = (char)(0x80 | (cp & 0x3F));
	}
	else if (cp < 0x10000)
	{
		*o++ = (char)(0xE0 | (cp >> 12));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	}
	else
	{
		*o++ = (char)(0xF0 | (cp >> 18));
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	}
	return o;
}

/*
 * A string at the cursor, decoded into *out (malloc'd; NULL when out is
 * NULL: skipped). False when it is not a well-formed string or memory ran out.
 */
static bool
ddl_json_string(ddl_json *j, char **out)
{
	char *buf = NULL, *o = NULL;

	if (j->p >= j->end || *j->p != '"')
		return false;
	j->p++;
	/* the decoded text is never longer than the encoded one */
	if (out && (buf = o = malloc((size_t)(j->end - j->p) + 1)) == NULL)
		return false;
	while (j->p < j->end && *j->p != '"')
	{
		char c = *j->p++;

		if ((unsigned char)c < 0x20)
			goto bad;
		if (c == '\\')
		{
			uint32_t cp;

			if (j->p >= j->end)
				goto bad;
			c = *j->p++;
			switch (c)
			{
				case '"':
				case '\\':
				case '/':
					break;
				case 'b':
					c = '\b';
					break;
				case 'f':
					c = '\f';
					break;
				case 'n':
					c = '\n';
					break;
				case 'r':
					c = '\r';
					break;
				case 't':
					c = '\t';
					break;
				case 'u':
					if (!ddl_json_u4(j, &cp))
						goto bad;
					if (cp >= 0xD800 && cp <= 0xDBFF)
					{
						uint32_t lo;

						if (!ddl_json_word(j, "\\u") || !ddl_json_u4(j, &lo) || lo < 0xDC00 ||
						    lo > 0xDFFF)
							goto bad;
						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					}
					else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0)
						goto bad; /* a lone low surrogate, or a NUL no C string can hold */
					if (o)
						o = ddl_utf8(o, cp);
					continue;
				default:
					goto bad;
			}
		}
		if (o)
			*o++ = c;
	}
	if (j->p >= j->end)
		goto bad;
	j->p++;
	if (out)
	{
		*o = '\0';
		*out = buf;
	}
	return true;
bad:
	free(buf);
	return false;
}

static bool ddl_json_skip(ddl_json *j, int depth);

/* Skip an array or object (open is '[' or '{'). */
static bool
ddl_json_skip_list(ddl_json *j, char close, int depth)
{
	j->p++;
	ddl_json_space(j);
	if (j->p < j->end && *j->p == close)
	{
		j->p++;
		return true;
	}
	for (;;)
	{
		if (close == '}')
		{
			if (!ddl_json_string(j, NULL))
				return false;
			ddl_json_space(j);
			if (j->p >= j->end || *j->p++ != ':')
				return false;
		}
		if (!ddl_json_skip(j, depth + 1))
			return false;
		ddl_json_space(j);
		if (j->p >= j->end)
			return false;
		if (*j->p == close)
		{
			j->p++;
			return true;
		}
		if (*j->p++ != ',')
			return false;
		ddl_json_space(j);
	}
}

/* Skip any value (nesting bounded). */
static bool
ddl_json_skip(ddl_json *j, int depth)
{
	ddl_json_space(j);
	if (j->p >= j->end || depth > 32)
		return false;
	switch (*j->p)
	{
		case '"':
			return ddl_json_string(j, NULL);
		case '[':
			return ddl_json_skip_list(j, ']', depth);
		case '{':
			return ddl_json_skip_list(j, '}', depth);
		case 't':
			return ddl_json_word(j, "true");
		case 'f':
			return ddl_json_word(j, "false");
		case 'n':
			return ddl_json_word(j, "null");
		default:
			if (*j->p != '-' && !isdigit((unsigned char)*j->p))
				return false;
			while (j->p < j->end && (isdigit((unsigned char)*j->p) || strchr("+-.eE", *j->p)))
				j->p++;
			return true;
	}
}

/* A string or null into *out (NULL for null). */
static bool
ddl_json_text(ddl_json *j, char **out)
{
	ddl_json_space(j);
	if (ddl_json_word(j, "null"))
		return true;
	free(*out);
	*out = NULL;
	return ddl_json_string(j, out);
}

/*
 * An array of strings: into *items (*n of them) when items is given, else joined with
 * "; " into *joined.
 */
static bool
ddl_json_strings(ddl_json *j, char ***items, int *n, char **joined)
{
	ddl_json_space(j);
	if (j->p >= j->end || *j->p != '[')
		return false;
	j->p++;
	ddl_json_space(j);
	if (j->p < j->end && *j->p == ']')
	{
		j->p++;
		return true;
	}
	for (;;)
	{
		char *s = NULL;

		ddl_json_space(j);
		if (!ddl_json_string(j, &s))
			return false;
		if (items)
		{
			char **grown = realloc(*items, (size_t)(*n + 1) * sizeof(char *));

			if (grown == NULL)
			{
				free(s);
				return false;
			}
			*items = grown;
			(*items)[(*n)++] = s;
		}
		else
		{
			size_t have = *joined ? strlen(*joined) : 0;
			char *grown = realloc(*joined, have + strlen(s) + 3);

			if (grown == NULL)
			{
				free(s);
				return false;
			}
			snprintf(grown + have, strlen(s) + 3, "%s%s", have ? "; " : "", s);
			*joined = grown;
			free(s);
		}
		ddl_json_space(j);
		if (j->p >= j->end)
			return false;
		if (*j->p == ']')
		{
			j->p++;
			return true;
		}
		if (*j->p++ != ',')
			return false;
	}
}

bool
ddl_msg_parse(const char *content, size_t len, ddl_msg *m, char *errbuf, size_t errlen)
{
	ddl_json j = {content, content + len};
	bool version = false;

	memset(m, 0, sizeof(*m));
	ddl_json_space(&j);
	if (j.p >= j.end || *j.p++ != '{')
		goto bad;
	ddl_json_space(&j);
	if (j.p < j.end && *j.p == '}')
		j.p++;
	else
		for (;;)
		{
			char *key = NULL;
			bool ok;

			ddl_json_space(&j);
			if (!ddl_json_string(&j, &key))
				goto bad;
			ddl_json_space(&j);
			if (j.p >= j.end || *j.p++ != ':')
			{
				free(key);
				goto bad;
			}
			if (strcmp(key, "v") == 0)
			{
				ddl_json_space(&j);
				ok = version = ddl_json_word(&j, "1");
			}
			else if (strcmp(key, "tag") == 0)
				ok = ddl_json_text(&j, &m->tag);
			else if (strcmp(key, "query") == 0)
				ok = ddl_json_text(&j, &m->query);
			else if (strcmp(key, "search_path") == 0)
				ok = ddl_json_text(&j, &m->search_path);
			else if (strcmp(key, "role") == 0)
				ok = ddl_json_text(&j, &m->role);
			else if (strcmp(key, "nodef") == 0)
				ok = ddl_json_text(&j, &m->nodef);
			else if (strcmp(key, "error") == 0)
				ok = ddl_json_text(&j, &m->error);
			else if (strcmp(key, "volatile") == 0)
				ok = ddl_json_text(&j, &m->volatile_tables);
			else if (strcmp(key, "defs") == 0)
				ok = m->ndefs == 0 && ddl_json_strings(&j, &m->defs, &m->ndefs, NULL);
			else if (strcmp(key, "after") == 0)
				ok = m->nafter == 0 && ddl_json_strings(&j, &m->after, &m->nafter, NULL);
			else if (strcmp(key, "schemas") == 0)
				ok = m->nschemas == 0 && ddl_json_strings(&j, &m->schemas, &m->nschemas, NULL);
			else if (strcmp(key, "commands") == 0)
				ok = m->commands == NULL && ddl_json_strings(&j, NULL, NULL, &m->commands);
			else
				ok = ddl_json_skip(&j, 0);
			free(key);
			if (!ok)
				goto bad;
			ddl_json_space(&j);
			if (j.p >= j.end)
				goto bad;
			if (*j.p == '}')
			{
				j.p++;
				break;
			}
			if (*j.p++ != ',')
				goto bad;
		}
	ddl_json_space(&j);
	if (j.p != j.end || !version || m->tag == NULL)
		goto bad;
	return true;
bad:
	snprintf(errbuf, errlen,
	         "a " DDL_MSG_PREFIX " message is not one this version of the tool understands "
	         "(%.*s%s)",
	         (int)(len > 120 ? 120 : len), content, len > 120 ? "..." : "");
	ddl_msg_free(m);
	return false;
}

void
ddl_msg_free(ddl_msg *m)
{
	free(m->tag);
	free(m->query);
	free(m->search_path);
	free(m->role);
	free(m->commands);
	free(m->nodef);
	free(m->error);
	free(m->volatile_tables);
	for (int i = 0; i < m->ndefs; i++)
		free(m->defs[i]);
	free(m->defs);
	for (int i = 0; i < m->nafter; i++)
		free(m->after[i]);
	free(m->after);
	for (int i = 0; i < m->nschemas; i++)
		free(m->schemas[i]);
	free(m->schemas);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------- the lexer */

/* Can c continue an identifier (PostgreSQL: letters, digits, _, $, and bytes >= 0x80)? */
static bool
ddl_ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

/* Can c start an identifier? */
static bool
ddl_ident_start(char c)
{
	return isalpha((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80;
}

/*
 * Move past the token at p (whitespace and comments are tokens too); NULL
 * when a quote or comment is not closed. *word is set when it is an
 * identifier or keyword.
 */
static const char *
ddl_lex_token(const char *p, bool *word)
{
	*word = false;
	if (isspace((unsigned char)*p))
	{
		while (isspace((unsigned char)*p))
			p++;
		return p;
	}
	if (p[0] == '-' && p[1] == '-')
	{
		while (*p && *p != '\n')
			p++;
		return p;
	}
	if (p[0] == '/' && p[1] == '*')
	{
		int depth = 1; /* PostgreSQL's block comments nest */

		p += 2;
		while (*p && depth > 0)
		{
			if (p[0] == '/' && p[1] == '*')
				depth++, p += 2;
			else if (p[0] == '*' && p[1] == '/')
				depth--, p += 2;
			else
				p++;
		}
		return depth == 0 ? p : NULL;
	}
	if (*p == '\'' || *p == '"')
	{
		char q = *p++;

		for (;;)
		{
			if (*p == '\0')
				return NULL;
			if (*p == q && p[1] == q)
				p += 2;
			else if (*p++ == q)
				return p;
		}
	}
	if ((*p == 'E' || *p == 'e') && p[1] == '\'')
	{
		/* an escape string: a backslash escapes the next character */
		for (p += 2;; p++)
		{
			if (*p == '\0')
				return NULL;
			if (*p == '\\')
			{
				if (*++p == '\0')
					return NULL;
			}
			else if (*p == '\'' && p[1] == '\'')
				p++;
			else if (*p == '\'')
				return p + 1;
		}
	}
	if (*p == '$')
	{
		/* $tag$ ... $tag$ (a tag never starts with a digit); else $1 or a lone $ */
		const char *t = p + 1;

		if (*t == '$' || ddl_ident_start(*t))
		{
			size_t taglen;
			const char *close;

			while (*t != '$' && *t && ddl_ident_char(*t) && *t != '$')
				t++;
			if (*t == '$')
			{
				taglen = (size_t)(t - p) + 1;
				for (close = t + 1; (close = strchr(close, '$')) != NULL; close++)
					if (strncmp(close, p, taglen) == 0)
						return close + taglen;
				return NULL;
			}
		}
		p++;
		while (isdigit((unsigned char)*p))
			p++;
		return p;
	}
	if (ddl_ident_start(*p))
	{
		*word = true;
		while (ddl_ident_char(*p))
			p++;
		return p;
	}
	return p + 1;
}

int
ddl_count_statements(const char *sql)
{
	int n = 0;
	bool in_stmt = false;

	for (const char *p = sql; *p;)
	{
		bool word;
		const char *next;

		if (*p == ';')
		{
			in_stmt = false;
			p++;
			continue;
		}
		next = ddl_lex_token(p, &word);
		if (next == NULL)
			return -1;
		if (!isspace((unsigned char)*p) && !(p[0] == '-' && p[1] == '-') &&
		    !(p[0] == '/' && p[1] == '*') && !in_stmt)
		{
			in_stmt = true;
			n++;
		}
		p = next;
	}
	return n;
}

#define DDL_LEADING_WORDS 8

bool
ddl_text_is_command(const char *sql, const char *tag, bool *concurrently)
{
	char words[DDL_LEADING_WORDS][32];
	int nwords = 0, w = 1;
	const char *t = tag;

	if (concurrently)
		*concurrently = false;
	if (sql == NULL || tag == NULL || ddl_count_statements(sql) != 1)
		return false;
	/* the leading words, up to the first token that is not one */
	for (const char *p = sql; *p && nwords < DDL_LEADING_WORDS;)
	{
		bool word;
		const char *next = ddl_lex_token(p, &word);

		if (next == NULL)
			return false;
		if (word)
		{
			size_t n = (size_t)(next - p);

			if (n >= sizeof(words[0]))
				n = sizeof(words[0]) - 1;
			for (size_t i = 0; i < n; i++)
				words[nwords][i] = (char)toupper((unsigned char)p[i]);
			words[nwords++][n] = '\0';
		}
		else if (!isspace((unsigned char)*p) && !(p[0] == '-' && p[1] == '-') &&
		         !(p[0] == '/' && p[1] == '*'))
			break;
		p = next;
	}
	if (nwords == 0)
		return false;
	for (int i = 0; concurrently && i < nwords; i++)
		if (strcmp(words[i], "CONCURRENTLY") == 0)
			*concurrently = true;
	/* the tag's first word first, then each of its other words in order */
	for (bool first = true; *t; first = false)
	{
		size_t n = strcspn(t, " ");
		bool found = false;

		if (first)
			found = strlen(words[0]) == n && strncmp(words[0], t, n) == 0;
		else
			for (; w < nwords && !found; w++)
				found = strlen(words[w]) == n && strncmp(words[w], t, n) == 0;
		if (!found)
			return false;
		t += n;
		while (*t == ' ')
			t++;
	}
	return true;
}

/* ------------------------------------------------------ the replay decision */

ddl_replay
ddl_decide(const ddl_msg *m, char *why, size_t whylen)
{
	bool concurrently = false;

	why[0] = '\0';
	if (m->error)
	{
		snprintf(why, whylen, "the source could not capture it (%s)", m->error);
		return DDL_REPLAY_NONE;
	}
	if (m->volatile_tables)
	{
		snprintf(
		    why, whylen,
		    "it rewrote %s with a volatile default (random(), nextval(), "
		    "gen_random_uuid()...): the values the source computed for the rows already there "
		    "are not in the stream, and the target would compute others. Add the column on the "
		    "target by hand, copy those values from the source, then skip the command",
		    m->volatile_tables);
		return DDL_REPLAY_NONE;
	}
	if (ddl_text_is_command(m->query, m->tag, &concurrently) && !concurrently)
		return DDL_REPLAY_TEXT;
	if (m->nodef)
	{
		snprintf(why, whylen,
		         "its text is not this one command alone (it ran inside a function, a DO block "
		         "or a query of several statements), and the tool cannot rebuild %s from the "
		         "catalog",
		         m->nodef);
		return DDL_REPLAY_NONE;
	}
	if (m->ndefs == 0)
	{
		snprintf(why, whylen,
		         "its text is not this one command alone (it ran inside a function, a DO block "
		         "or a query of several statements), and the capture rebuilt nothing for it");
		return DDL_REPLAY_NONE;
	}
	return DDL_REPLAY_DEFS;
}

/* ------------------------------------------------------- the publish hook */

bool
ddl_publish_hook_sql(strbuf *sql, const char *lpub, const char *in_scope)
{
	strbuf_reset(sql);
	return strbuf_appendf(
	    sql,
	    "CREATE FUNCTION " DDL_PUBLISH_HOOK "(rel oid) RETURNS void "
	    "LANGUAGE plpgsql SECURITY DEFINER "
	    "SET search_path = pg_catalog, pg_temp AS $pgdbm_hook$\n"
	    "BEGIN\n"
	    "  IF EXISTS (SELECT FROM pg_class c "
	    "JOIN pg_namespace s ON s.oid = c.relnamespace "
	    "WHERE c.oid = rel AND c.relkind IN ('r', 'p') "
	    "AND c.relpersistence = 'p' AND NOT c.relispartition AND %s "
	    "AND (c.relreplident = 'f' OR EXISTS (SELECT FROM pg_index i "
	    "WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)))) "
	    "THEN\n"
	    "    EXECUTE format('ALTER PUBLICATION %%I ADD TABLE %%s', %s, rel::regclass);\n"
	    "  END IF;\n"
	    "END\n"
	    "$pgdbm_hook$;\n"
	    "ALTER EXTENSION plpgsql ADD FUNCTION " DDL_PUBLISH_HOOK "(oid);\n",
	    in_scope, lpub);
}

/* ------------------------------------------------------------ the scope */

/* Is name among the n names of list? */
static bool
ddl_listed(const char *name, const char *const *list, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return true;
	return false;
}

bool
ddl_in_scope(const ddl_msg *m, const char *const *schemas, int nschemas,
             const char *const *ex_schemas, int nex_schemas)
{
	if (m->nschemas == 0 || (nschemas == 0 && nex_schemas == 0))
		return true;
	for (int i = 0; i < m->nschemas; i++)
	{
		const char *s = m->schemas[i];

		/* an object of no schema (a role, an extension...) is everyone's */
		if (s[0] == '\0')
			return true;
		if ((nschemas == 0 || ddl_listed(s, schemas, nschemas)) &&
		    !ddl_listed(s, ex_schemas, nex_schemas))
			return true;
	}
	return false;
}
