-- 001: the clients table.
--
-- schema_migrations(version, name, applied_at) is created by `tokenctl
-- migrate` itself before it reads which versions are applied, so this first
-- migration only has to create what tokend needs. The runner wraps each file
-- in its own transaction together with its schema_migrations row: a file
-- must not contain BEGIN, COMMIT or anything that cannot run inside a
-- transaction block.
--
-- Lists (scopes, audiences, grant types) are text arrays so a constraint can
-- compare them; tokend reads them with array_to_string(..., ' ').

CREATE TABLE clients (
    client_id      text PRIMARY KEY
                   CONSTRAINT clients_client_id_check CHECK (client_id ~ '^[!-~]{1,128}$'),
    secret_hash    text NOT NULL,                    -- pbkdf2-sha256$iterations$salt$key
    allowed_scopes text[] NOT NULL DEFAULT '{}',
    default_scopes text[] NOT NULL DEFAULT '{}',    -- granted when a request names no scope
    audiences      text[] NOT NULL DEFAULT '{}',    -- first is the default; none = issuer's default
    token_ttl_s    integer
                   CONSTRAINT clients_token_ttl_s_check
                   CHECK (token_ttl_s IS NULL OR token_ttl_s BETWEEN 1 AND 86400),  -- NULL = config default
    grant_types    text[] NOT NULL DEFAULT '{client_credentials}',
    enabled        boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT clients_default_scopes_subset CHECK (default_scopes <@ allowed_scopes)
);

COMMENT ON TABLE clients IS
    'OAuth clients of tokend; managed with tokenctl client ...; changes are announced with NOTIFY tokend_clients, client_id';
