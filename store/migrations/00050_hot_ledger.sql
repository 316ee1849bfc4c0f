-- A finished call's update of its ledger row is heap-only (HOT): it writes
-- no index entry. Postgres makes an update HOT when the row's page has room
-- for the new version and no indexed column changed; a column in an index's
-- key, its INCLUDE list or its predicate counts. A call's status, duration
-- and finish time change when it ends, so after this migration (and 00051)
-- no index of tool_calls holds them:
--   - fillfactor 70 leaves each new page room for its rows' finished
--     versions (results are larger than the running rows); turns get 80,
--     so that a step's update of its running turn (steps, tokens, lease) is
--     HOT too. Existing pages keep what they hold.
--   - what the admin's status filter, its statistics and a turn's start
--     read by status lives in two narrow tables beside the ledger, kept by
--     triggers on it, whatever statement writes a call:
--     tool_calls_open holds the calls running or awaiting an approval (a
--     row inserted when the call starts, deleted when it ends);
--     tool_call_outcomes holds what an ended call adds up to (status,
--     duration, and the server, tool and start it is filtered and grouped
--     by), inserted when it ends and never changed on the turn's path.

-- +goose Up
ALTER TABLE tool_calls SET (fillfactor = 70);
ALTER TABLE turns SET (fillfactor = 80);

CREATE TABLE tool_calls_open (
    id UUID PRIMARY KEY REFERENCES tool_calls(id) ON DELETE CASCADE,
    conversation_id UUID NOT NULL,
    status TEXT NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL
);

CREATE TABLE tool_call_outcomes (
    id UUID PRIMARY KEY REFERENCES tool_calls(id) ON DELETE CASCADE,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    server VARCHAR(255) NOT NULL,
    tool VARCHAR(255) NOT NULL,
    status TEXT NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL
);

INSERT INTO tool_calls_open (id, conversation_id, status, started_at)
SELECT id, conversation_id, status, started_at FROM tool_calls WHERE status IN ('running', 'awaiting_approval');
INSERT INTO tool_call_outcomes (id, started_at, server, tool, status, duration_ms)
SELECT id, started_at, server, tool, status, duration_ms FROM tool_calls
WHERE status NOT IN ('running', 'awaiting_approval');

-- +goose StatementBegin
CREATE FUNCTION tool_call_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('running', 'awaiting_approval') THEN
        INSERT INTO tool_calls_open (id, conversation_id, status, started_at)
        VALUES (NEW.id, NEW.conversation_id, NEW.status, NEW.started_at)
        ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status;
        IF TG_OP = 'UPDATE' THEN
            DELETE FROM tool_call_outcomes WHERE id = NEW.id;
        END IF;
    ELSE
        IF TG_OP = 'UPDATE' THEN
            DELETE FROM tool_calls_open WHERE id = NEW.id;
        END IF;
        INSERT INTO tool_call_outcomes (id, started_at, server, tool, status, duration_ms)
        VALUES (NEW.id, NEW.started_at, NEW.server, NEW.tool, NEW.status, NEW.duration_ms)
        ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, duration_ms = EXCLUDED.duration_ms;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER tool_call_status_insert AFTER INSERT ON tool_calls FOR EACH ROW
    EXECUTE FUNCTION tool_call_status();
CREATE TRIGGER tool_call_status_update AFTER UPDATE ON tool_calls FOR EACH ROW
    WHEN ((OLD.status, OLD.duration_ms) IS DISTINCT FROM (NEW.status, NEW.duration_ms))
    EXECUTE FUNCTION tool_call_status();

-- +goose Down
DROP TRIGGER tool_call_status_update ON tool_calls;
DROP TRIGGER tool_call_status_insert ON tool_calls;
DROP FUNCTION tool_call_status();
DROP TABLE tool_call_outcomes;
DROP TABLE tool_calls_open;
ALTER TABLE turns RESET (fillfactor);
ALTER TABLE tool_calls RESET (fillfactor);
