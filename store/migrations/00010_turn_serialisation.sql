-- Turns of one conversation run one at a time, also across several
-- instances on one database: a conversation has at most one running turn,
-- held under a lease that the running instance renews. A turn whose lease
-- ran out (its instance died) is failed by the next turn to start.
--
-- A turn also keeps a hash of the request that started it, so that a retry
-- with the same Idempotency-Key can be told from another request.

-- +goose Up
ALTER TABLE turns
    ADD COLUMN request_hash TEXT NOT NULL DEFAULT '',
    ADD COLUMN lease_until TIMESTAMP WITH TIME ZONE;

-- Turns left running by older versions: keep the newest per conversation.
UPDATE turns t SET status = 'failed', error = 'abandoned', finished_at = now()
WHERE status = 'running' AND EXISTS (
    SELECT FROM turns n WHERE n.conversation_id = t.conversation_id AND n.status = 'running'
        AND (n.started_at, n.id) > (t.started_at, t.id));
UPDATE turns SET lease_until = now() WHERE status = 'running';

CREATE UNIQUE INDEX turns_one_running ON turns (conversation_id) WHERE status = 'running';

-- +goose Down
DROP INDEX turns_one_running;
ALTER TABLE turns DROP COLUMN lease_until, DROP COLUMN request_hash;
