-- 003: token revocation (RFC 7009) and the introspection permission.
--
-- revocations: one row per revoked token, written by the worker that
-- answered POST /oauth/revoke (or by `tokenctl tokens revoke`) before it
-- answers, and announced on the notify channel as '*revoke <jti> <exp>' so
-- every instance's flusher passes it to its workers. Workers load the rows
-- that still matter (expires_at in the future) when they start. A row is
-- useless once its token has expired, since an expired token is inactive
-- anyway; tokend_purge_revocations() deletes those, and runs with the
-- token partition maintenance (the flusher's hourly pass and `tokenctl
-- tokens maintain`). It keeps an hour past expires_at so that a verifier
-- whose clock is behind (clock_skew) still finds the row.
--
-- jti is the JWT's jti as tokend writes it (32 lowercase hex digits). No
-- foreign key: like tokens, a revocation outlives its client's row.
--
-- clients.tokens_not_before: `tokenctl client revoke-all` sets it to now();
-- every token of the client issued before it (iat earlier than that second,
-- or in that same second) is inactive, with no list of jtis. Changing it
-- goes through the same notification as any client change, so every
-- worker forgets the client and its cached introspection answers.

CREATE TABLE revocations (
    jti        text        PRIMARY KEY
               CONSTRAINT revocations_jti_check CHECK (jti ~ '^[0-9a-f]{32}$'),
    client_id  text        NOT NULL,              -- the token's client_id
    expires_at timestamptz NOT NULL,              -- the token's exp
    revoked_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX revocations_expires_at_idx ON revocations (expires_at);

COMMENT ON TABLE revocations IS
    'Revoked access tokens (never the token itself); written on POST /oauth/revoke and by '
    'tokenctl tokens revoke, announced with NOTIFY ''*revoke <jti> <exp>'', purged by '
    'tokend_purge_revocations() an hour after the token expires';

ALTER TABLE clients ADD COLUMN tokens_not_before timestamptz;

COMMENT ON COLUMN clients.tokens_not_before IS
    'tokenctl client revoke-all: tokens of this client issued before this second (or in it) are inactive';

-- Deletes the revocations of tokens that expired more than an hour ago;
-- returns how many. Takes only row locks: safe to run at any time.
CREATE FUNCTION tokend_purge_revocations()
RETURNS bigint
LANGUAGE sql
AS $$
    WITH purged AS (
        DELETE FROM revocations WHERE expires_at < now() - interval '1 hour' RETURNING 1
    )
    SELECT count(*) FROM purged
$$;

COMMENT ON FUNCTION tokend_purge_revocations() IS
    'Deletes revocations of tokens that expired over an hour ago; returns how many';
