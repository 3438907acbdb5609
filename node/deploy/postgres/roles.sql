-- Least-privilege PostgreSQL roles for a group of Ephemera nodes, as cwa-server has them
-- (node/docs/OPERATIONS.md, "Least-privilege roles"). The node's test
-- node/tests/it/postgres_roles.rs runs this very file.
--
--   ephemera_owner      owns the schema and its tables, applies migrations: the URL of the
--                       node with [storage] role = "all" (one such node suffices; it may be
--                       started only to migrate, at the first start and at each upgrade)
--   ephemera_intake     phones' verify and upload ([storage] role = "intake"): reads and
--                       consumes codes, inserts certificates, uploads and queue groups; may
--                       NOT read or delete an upload
--   ephemera_publisher  cuts batches, purges what is past retention, serves batches and
--                       exports ([storage] role = "publisher"): reads and deletes uploads
--                       and queue groups, writes batches, the index and exports; owns the
--                       table data_keys, since only a table's owner may VACUUM FULL it
--                       (PostgreSQL 15; 17 has the MAINTAIN privilege) and a purge rewrites
--                       it so that destroyed keys leave the disk; may NOT insert codes
--   ephemera_console    the authority's console ([storage] role = "console"): accounts,
--                       sessions, credentials, API keys, quotas, issuing and revoking codes,
--                       the audit trail, statistics; may NOT read uploads or data keys
--
-- Run it as a superuser, with the group's schema first on the search path, twice: before
-- the owner's node first starts (it makes the roles, and lets the owner create the schema),
-- and once that node has migrated the schema (it grants each role its tables). Run it again
-- after every upgrade that adds tables; each run is idempotent:
--
--   PGOPTIONS='-c search_path=ephemera' psql -v ON_ERROR_STOP=1 "$SUPERUSER_URL" -f roles.sql
--
-- The roles log in without a password here: set one for each (`\password ephemera_intake`
-- in psql) or authenticate them by certificate in pg_hba.conf.

-- 1. The roles (cluster-wide).
DO $$
DECLARE
    role text;
BEGIN
    FOREACH role IN ARRAY ARRAY['ephemera_owner', 'ephemera_intake', 'ephemera_publisher',
                                'ephemera_console'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN', role);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- made at the same instant by another run of this file
            END;
        END IF;
    END LOOP;
    -- The owner creates the schema at its first start, and may alter data_keys (owned by
    -- the publisher) in a later migration.
    EXECUTE format('GRANT CREATE ON DATABASE %I TO ephemera_owner', current_database());
    IF NOT pg_has_role('ephemera_owner', 'ephemera_publisher', 'MEMBER') THEN
        GRANT ephemera_publisher TO ephemera_owner;
    END IF;
END
$$;

-- 2. The grants, once the owner's node has made the tables. Each is what the store methods
-- of the role's subsystems touch (node/core/src/store/postgres_store.rs), column by column
-- where a table holds something the role must not read. `INSERT … ON CONFLICT DO UPDATE`
-- needs UPDATE on the columns it sets and SELECT on those it reads (EXCLUDED's too), a
-- conflict target SELECT on its columns (so intake's inserts of uploads and queue groups
-- are a plain `ON CONFLICT DO NOTHING`), `DELETE … WHERE` and
-- `RETURNING` need SELECT on the columns they read, and `SELECT … FOR UPDATE` needs
-- UPDATE.
DO $$
BEGIN
    IF current_schema() IS NULL OR to_regclass('migrations') IS NULL THEN
        RAISE NOTICE 'no migrated Ephemera schema on the search path (%): start the node with '
            '[storage] role = "all" as ephemera_owner, then run this file again',
            current_setting('search_path');
        RETURN;
    END IF;
    IF current_schema() = 'public' THEN
        RAISE EXCEPTION 'put the group''s schema first on the search path '
            '(PGOPTIONS=''-c search_path=ephemera''), not public';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO ephemera_intake, ephemera_publisher, '
                   'ephemera_console', current_schema());
    -- Every narrower node checks at start that the schema is migrated, and migrates nothing.
    GRANT SELECT ON migrations TO ephemera_intake, ephemera_publisher, ephemera_console;

    -- intake: verify (take a code, mark its status used, count it) and upload (take the
    -- certificate, store the sealed upload, queue its groups, count it).
    GRANT SELECT, INSERT ON data_keys TO ephemera_intake;
    GRANT SELECT (lookup, sealed), DELETE ON codes TO ephemera_intake;
    GRANT SELECT (reference, record), UPDATE (record) ON code_status TO ephemera_intake;
    GRANT SELECT, INSERT ON certificates TO ephemera_intake;
    GRANT INSERT ON uploads, queue TO ephemera_intake;
    GRANT SELECT, INSERT, DELETE ON expiry TO ephemera_intake;
    GRANT SELECT, INSERT, UPDATE, DELETE ON stats TO ephemera_intake;
    -- Each day's upload count and id digest, kept in the upload's transaction.
    GRANT SELECT, INSERT, UPDATE ON day_digests TO ephemera_intake;
    -- The group's blind-token keys (sealed under the code pepper, which the database never
    -- holds): made by whichever intake node gets to a day first, read by the others,
    -- forgotten after retention.
    GRANT SELECT, INSERT, DELETE ON token_keys TO ephemera_intake;
    -- The last cut, against which every node judges its wall clock, and the group's bound
    -- batch key, which every node compares with its own at start (the owner's node records
    -- it, and moves it on after a batch-key rotation: start that node first).
    GRANT SELECT ON meta TO ephemera_intake;

    -- publisher: cut (read and remove queue groups, write batches, the index and exports,
    -- the cutter's state), serve, and purge reports, certificates, batches, exports,
    -- expired codes and the data keys past retention.
    ALTER TABLE data_keys OWNER TO ephemera_publisher;
    GRANT SELECT, DELETE ON uploads TO ephemera_publisher;
    GRANT SELECT, DELETE ON queue TO ephemera_publisher;
    GRANT SELECT (id), DELETE ON certificates TO ephemera_publisher;
    GRANT SELECT (lookup), DELETE ON codes TO ephemera_publisher;
    GRANT SELECT, INSERT, UPDATE, DELETE ON batches, batch_index, exports, expiry
        TO ephemera_publisher;
    GRANT SELECT, INSERT, UPDATE ON meta TO ephemera_publisher;
    GRANT SELECT, INSERT, UPDATE, DELETE ON stats TO ephemera_publisher;
    -- The purge takes the uploads it deletes out of their day's count and digest.
    GRANT SELECT, INSERT, UPDATE, DELETE ON day_digests TO ephemera_publisher;
    -- Venue releases: served to phones, taken from peers, purged at their expiry.
    GRANT SELECT, INSERT, DELETE ON venue_releases TO ephemera_publisher;

    -- console: staff, sessions, API keys and quotas; issuing and revoking codes; the audit
    -- trail; statistics; and its share of the purge (audit records, code statuses,
    -- counters).
    GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, credentials, sessions, api_keys, quotas
        TO ephemera_console;
    GRANT SELECT, INSERT, UPDATE (sealed), DELETE ON codes TO ephemera_console;
    GRANT SELECT, INSERT, UPDATE, DELETE ON code_status TO ephemera_console;
    GRANT INSERT ON expiry TO ephemera_console;
    GRANT SELECT, INSERT, DELETE ON audit TO ephemera_console;
    GRANT SELECT, INSERT, UPDATE ON meta TO ephemera_console;
    GRANT SELECT, INSERT, UPDATE, DELETE ON stats TO ephemera_console;
    -- The upload count its metrics show.
    GRANT SELECT ON day_digests TO ephemera_console;
    -- A case worker's venue trace, stored as a release (public bytes) and filed for purge.
    GRANT SELECT, INSERT ON venue_releases TO ephemera_console;
END
$$;
