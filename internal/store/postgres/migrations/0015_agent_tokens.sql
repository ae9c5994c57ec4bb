-- 0015: agent tokens, a third kind of token beside 'worker' and 'api': one
-- that may only send host reports (POST /worker/hosts), never lease work.
-- Mirrors internal/store/sqlite/migrations/0015_agent_tokens.sql.
ALTER TABLE worker_tokens DROP CONSTRAINT worker_tokens_kind_check;
ALTER TABLE worker_tokens ADD CONSTRAINT worker_tokens_kind_check CHECK (kind IN ('worker', 'api', 'agent'));
