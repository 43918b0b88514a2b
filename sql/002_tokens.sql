-- 002: the tokens table, a record of every access token tokend issued.
--
-- What a row holds: who got a token, for what, and when it expires. Never
-- the JWT itself and nothing else that would let a reader of this table
-- present a token: jti alone authorises nothing (the signature does).
--
-- Partitioning: RANGE on issued_at, one partition per UTC day named
-- tokens_pYYYYMMDD covering [YYYY-MM-DD 00:00+00, next day 00:00+00), plus
-- tokens_default, which takes rows of any day that has no partition yet, so
-- an insert never fails for a missing day. Old days go with a DROP TABLE
-- instead of a DELETE that would bloat the table and its indexes.
--
-- Primary key (jti, issued_at): PostgreSQL requires a partitioned table's
-- unique constraints to contain the partition key, so jti alone cannot be
-- the key. Re-sends stay idempotent all the same: the flusher re-sends a
-- batch exactly as it was queued, so a re-sent record carries the same jti
-- and the same issued_at, lands in the same partition and meets the same
-- key there (INSERT ... ON CONFLICT DO NOTHING keeps one row). Two
-- different tokens never share a jti, because jtis are 128-bit random
-- values; the key being wider than jti therefore admits no duplicate that
-- could really occur.
--
-- Maintenance lives in two SQL functions, so tokenctl and the flusher of
-- every host share one implementation with one call each:
--   tokend_ensure_token_partitions(days_ahead integer) -> integer
--   tokend_drop_token_partitions(before_day date,
--                                OUT dropped_partitions integer,
--                                OUT deleted_rows bigint)
-- Both serialise on one transaction-scoped advisory lock, so two hosts
-- running them at once queue instead of racing, and both bound their lock
-- waits with lock_timeout (see below).
--
-- No foreign key to clients: deleting a client must not touch or be blocked
-- by the record of the tokens it was issued, and the flusher's inserts must
-- not pay for a lookup per row.

CREATE TABLE tokens (
    jti        uuid        NOT NULL,             -- the JWT's jti: 128 random bits
    client_id  text        NOT NULL,
    scope      text        NOT NULL DEFAULT '',  -- granted scopes, space-separated
    audience   text        NOT NULL,             -- the JWT's aud
    issued_at  timestamptz NOT NULL,             -- iat
    expires_at timestamptz NOT NULL,             -- exp
    CONSTRAINT tokens_pkey PRIMARY KEY (jti, issued_at)
) PARTITION BY RANGE (issued_at);

-- For `tokenctl tokens count --client ID` and per-client history.
CREATE INDEX tokens_client_id_issued_at_idx ON tokens (client_id, issued_at);

CREATE TABLE tokens_default PARTITION OF tokens DEFAULT;

COMMENT ON TABLE tokens IS
    'Every access token tokend issued (never the token itself); one partition per UTC day '
    '(tokens_pYYYYMMDD) plus tokens_default; written by the flusher, maintained with '
    'tokend_ensure_token_partitions and tokend_drop_token_partitions';

-- Creates the partitions of today (UTC, by the database's clock) and of the
-- next `days_ahead` days that do not exist yet; returns how many it created.
-- Also recreates tokens_default if someone dropped it.
--
-- A day may already have rows in tokens_default (inserted while its
-- partition was missing). PostgreSQL refuses to add a partition whose range
-- the default partition has rows for, so the new partition is built as a
-- plain table, those rows are moved into it, and then it is attached. All of
-- it is one transaction: a failure leaves nothing half done.
--
-- Locks: when every partition exists it takes only the advisory lock (no
-- table lock at all), so calling it often is cheap. Creating a partition
-- needs an ACCESS EXCLUSIVE lock on tokens, which waits for running inserts
-- and queries and holds up new ones. lock_timeout bounds that wait at 1 s:
-- every insert stalls while the request waits, and the flusher's own
-- deadline (db_timeout_ms, 2 s by default) should not fire first. A call
-- that times out (SQLSTATE 55P03) changed nothing and can be repeated.
-- Call it outside a long transaction of your own: the locks last until the
-- caller's transaction ends.
CREATE FUNCTION tokend_ensure_token_partitions(days_ahead integer)
RETURNS integer
LANGUAGE plpgsql
SET lock_timeout = '1s'
AS $$
DECLARE
    today          date := (now() AT TIME ZONE 'UTC')::date;
    the_day        date;
    partition_name text;
    low_bound      text;
    high_bound     text;
    created        integer := 0;
BEGIN
    IF days_ahead IS NULL OR days_ahead < 0 OR days_ahead > 366 THEN
        RAISE EXCEPTION 'days_ahead must be from 0 to 366, not %', days_ahead
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The same key as in tokend_drop_token_partitions.
    PERFORM pg_advisory_xact_lock(8390042714202467688);

    IF to_regclass('tokens_default') IS NULL THEN
        CREATE TABLE tokens_default PARTITION OF tokens DEFAULT;
    END IF;

    FOR day_offset IN 0 .. days_ahead LOOP
        the_day := today + day_offset;
        partition_name := 'tokens_p' || to_char(the_day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(partition_name) IS NOT NULL;
        -- Bounds spelled with their offset: the session's TimeZone plays no part.
        low_bound := to_char(the_day, 'YYYY-MM-DD') || ' 00:00:00+00';
        high_bound := to_char(the_day + 1, 'YYYY-MM-DD') || ' 00:00:00+00';

        -- Taken first so that no insert into tokens_default for this day can
        -- slip in between the move and the attach.
        LOCK TABLE tokens IN ACCESS EXCLUSIVE MODE;
        EXECUTE format('CREATE TABLE %I (LIKE tokens INCLUDING DEFAULTS)', partition_name);
        EXECUTE format(
            'WITH moved AS ('
            '  DELETE FROM tokens_default WHERE issued_at >= $1 AND issued_at < $2'
            '  RETURNING jti, client_id, scope, audience, issued_at, expires_at)'
            ' INSERT INTO %I (jti, client_id, scope, audience, issued_at, expires_at)'
            ' SELECT jti, client_id, scope, audience, issued_at, expires_at FROM moved',
            partition_name)
            USING low_bound::timestamptz, high_bound::timestamptz;
        -- Attaching gives the partition the indexes of tokens (primary key
        -- and client index) and checks tokens_default holds no row of it.
        EXECUTE format('ALTER TABLE tokens ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       partition_name, low_bound, high_bound);
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

COMMENT ON FUNCTION tokend_ensure_token_partitions(integer) IS
    'Creates the missing day partitions of tokens for today (UTC) .. today + days_ahead, moving '
    'their rows out of tokens_default; returns how many it created';

-- Drops every day partition whose whole day lies before `before_day` (the
-- partition tokens_pYYYYMMDD for YYYY-MM-DD < before_day) and deletes the
-- rows of tokens_default issued before before_day 00:00 UTC. Returns how
-- many partitions it dropped and how many default rows it deleted.
--
-- Only tables attached to tokens and named by the tokens_pYYYYMMDD rule are
-- considered. Locking as for tokend_ensure_token_partitions: no table lock
-- when there is nothing to drop (the delete from tokens_default takes only a
-- row lock level, which inserts do not wait for).
CREATE FUNCTION tokend_drop_token_partitions(before_day date,
                                             OUT dropped_partitions integer,
                                             OUT deleted_rows bigint)
LANGUAGE plpgsql
SET lock_timeout = '1s'
AS $$
DECLARE
    limit_name     text;
    partitions     text[];
    partition_name text;
BEGIN
    IF before_day IS NULL OR before_day = '-infinity' OR before_day = 'infinity' THEN
        RAISE EXCEPTION 'before_day must be a date, not %', coalesce(before_day::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(8390042714202467688);

    -- YYYYMMDD names compare like the dates they spell (in byte order).
    limit_name := 'tokens_p' || to_char(before_day, 'YYYYMMDD');
    SELECT coalesce(array_agg(c.relname::text ORDER BY c.relname::text COLLATE "C"), '{}')
      INTO partitions
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'tokens'::regclass
       AND c.relname ~ '^tokens_p[0-9]{8}$'
       AND c.relname::text COLLATE "C" < limit_name;

    dropped_partitions := 0;
    IF cardinality(partitions) > 0 THEN
        LOCK TABLE tokens IN ACCESS EXCLUSIVE MODE;
        FOREACH partition_name IN ARRAY partitions LOOP
            EXECUTE format('DROP TABLE %I', partition_name);
            dropped_partitions := dropped_partitions + 1;
        END LOOP;
    END IF;

    DELETE FROM tokens_default
     WHERE issued_at < (before_day::timestamp AT TIME ZONE 'UTC');
    GET DIAGNOSTICS deleted_rows = ROW_COUNT;
END
$$;

COMMENT ON FUNCTION tokend_drop_token_partitions(date) IS
    'Drops the day partitions of tokens before before_day (UTC) and deletes the rows of '
    'tokens_default issued before it; returns (dropped_partitions, deleted_rows)';

-- A fresh install can record tokens at once, in day partitions.
SELECT tokend_ensure_token_partitions(2);
