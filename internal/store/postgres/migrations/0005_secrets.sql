-- 0005: the secret store. Mirrors internal/store/sqlite/migrations/0005_secrets.sql;
-- conventions as in 0001.

-- One row per secret. The value is sealed by internal/secret (AES-256-GCM
-- with the name as additional data) before it reaches the store: sealed
-- holds the nonce and the ciphertext, key_id names the key that sealed it,
-- so a key rotation finds the rows still sealed with an old key.
CREATE TABLE secrets (
    name       text COLLATE "C" NOT NULL PRIMARY KEY,
    key_id     text        NOT NULL,
    sealed     bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
