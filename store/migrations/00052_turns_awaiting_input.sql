-- A modern server's question (MCP 2026-07-28) outlives the instance that
-- ran its call: nothing is held open on a connection, and the call can be
-- made again, from any instance, with the answer (inputResponses) and the
-- stored requestState. So a turn whose instance stopped while such a
-- question waited is not failed: it is stored awaiting_input, its asking
-- call left running, until an answer takes it over (issue 17).
--
-- input_requests is the whole round the question came in (the result's
-- inputRequests, by key), so that the call made again answers every one of
-- them; taken_at is when the call took the answer to send it on: an answer
-- taken is never sent twice, one not yet taken is sent by whoever resumes
-- the call. The status check is extended in place, as 00040 does.

-- +goose Up
ALTER TABLE inputs ADD COLUMN input_requests jsonb, ADD COLUMN taken_at timestamptz;
CREATE INDEX inputs_turn ON inputs (turn_id);
-- A turn's start cancels the conversation's turn awaiting input, as it
-- does one awaiting approval (turns_awaiting): empty but for them.
CREATE INDEX turns_awaiting_input ON turns (conversation_id) WHERE status = 'awaiting_input';

-- +goose StatementBegin
DO $$
DECLARE def text;
BEGIN
    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
    WHERE conname = 'turns_status_check' AND conrelid = 'turns'::regclass;
    ALTER TABLE turns DROP CONSTRAINT turns_status_check;
    EXECUTE 'ALTER TABLE turns ADD CONSTRAINT turns_status_check '
        || replace(def, '''running''::text', '''running''::text, ''awaiting_input''::text');
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE def text;
BEGIN
    UPDATE turns SET status = 'failed', error = 'awaited input when the schema was migrated down', finished_at = now()
    WHERE status = 'awaiting_input';
    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
    WHERE conname = 'turns_status_check' AND conrelid = 'turns'::regclass;
    ALTER TABLE turns DROP CONSTRAINT turns_status_check;
    EXECUTE 'ALTER TABLE turns ADD CONSTRAINT turns_status_check '
        || replace(def, ', ''awaiting_input''::text', '');
END $$;
-- +goose StatementEnd
DROP INDEX turns_awaiting_input;
DROP INDEX inputs_turn;
ALTER TABLE inputs DROP COLUMN input_requests, DROP COLUMN taken_at;
