-- 0005: the secret store. Mirrors internal/store/postgres/migrations/0005_secrets.sql;
-- conventions as in 0001.

-- One row per secret. The value is sealed by internal/secret (AES-256-GCM
-- with the name as additional data) before it reaches the store: sealed
-- holds the nonce and the ciphertext, key_id names the key that sealed it,
-- so a key rotation finds the rows still sealed with an old key.
CREATE TABLE secrets (
    name       TEXT    NOT NULL PRIMARY KEY,
    key_id     TEXT    NOT NULL,
    sealed     BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
