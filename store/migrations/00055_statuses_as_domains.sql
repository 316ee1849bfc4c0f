-- The statuses of turns and ledger rows and the role and type of messages
-- take their allowed values from a domain's constraint instead of a CHECK
-- constraint of their table. Postgres rebuilds a table's CHECK expressions
-- for every statement that writes the table (it parses the stored tree
-- and plans it again: ExecRelCheck), about 70 µs of a turn's backend CPU
-- over its eleven writes (BENCHMARKS.md, fifth round); a domain's
-- constraint is parsed and planned once per connection (the type cache).
-- The values allowed are the same; a violation is the same error (23514).
--
-- No table is rewritten: a column changes to a domain without constraints
-- (binary coercible: the rows and the indexes on it stay as they are, but
-- for the partial indexes whose predicate names the column, which are
-- built again: 0.1 s for 500,000 ledger rows), then the domain gets its
-- constraint NOT VALID, which checks every value written from then on. The
-- rows already there passed the tables' constraints when they were written
-- (the messages' role constraint was NOT VALID already: rows adopted from
-- the seed). TestDomainsCheckValues keeps a table's CHECK from coming back.
--
-- The columns' types change: a connection of an instance still running an
-- earlier version fails each statement it prepared that returns one of
-- them, once ("cached plan must not change result type"; pgx prepares it
-- again). README, "Upgrading while older instances serve".

-- +goose Up
CREATE DOMAIN turn_status AS text;
ALTER TABLE turns ALTER COLUMN status TYPE turn_status;
ALTER TABLE turns DROP CONSTRAINT IF EXISTS turns_status_check;
ALTER DOMAIN turn_status ADD CONSTRAINT turn_status_check CHECK (VALUE IN ('running', 'awaiting_input',
    'max_handoffs', 'guardrail_tripped', 'completed', 'failed', 'max_steps', 'cancelled', 'awaiting_approval')) NOT VALID;

CREATE DOMAIN call_status AS text;
ALTER TABLE tool_calls ALTER COLUMN status TYPE call_status;
ALTER TABLE tool_calls DROP CONSTRAINT IF EXISTS tool_calls_status_check;
ALTER DOMAIN call_status ADD CONSTRAINT call_status_check CHECK (VALUE IN ('running', 'succeeded', 'failed',
    'timed_out', 'cancelled', 'denied', 'awaiting_approval')) NOT VALID;

CREATE DOMAIN message_role AS varchar(20);
ALTER TABLE messages ALTER COLUMN role TYPE message_role;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_role_check;
ALTER DOMAIN message_role ADD CONSTRAINT message_role_check CHECK (VALUE IN ('user', 'assistant', 'tool', 'system')) NOT VALID;

CREATE DOMAIN message_type AS varchar(50);
ALTER TABLE messages ALTER COLUMN message_type TYPE message_type;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_message_type_check;
ALTER DOMAIN message_type ADD CONSTRAINT message_type_check CHECK (VALUE IN ('text', 'handoff', 'tool_call',
    'tool_result', 'error')) NOT VALID;

-- +goose Down
ALTER TABLE messages ALTER COLUMN message_type TYPE varchar(50);
ALTER TABLE messages ADD CONSTRAINT messages_message_type_check CHECK (message_type IN ('text', 'handoff', 'tool_call',
    'tool_result', 'error')) NOT VALID;
DROP DOMAIN message_type;

ALTER TABLE messages ALTER COLUMN role TYPE varchar(20);
ALTER TABLE messages ADD CONSTRAINT messages_role_check CHECK (role IN ('user', 'assistant', 'tool', 'system')) NOT VALID;
DROP DOMAIN message_role;

ALTER TABLE tool_calls ALTER COLUMN status TYPE text;
ALTER TABLE tool_calls ADD CONSTRAINT tool_calls_status_check CHECK (status IN ('running', 'succeeded', 'failed',
    'timed_out', 'cancelled', 'denied', 'awaiting_approval')) NOT VALID;
DROP DOMAIN call_status;

ALTER TABLE turns ALTER COLUMN status TYPE text;
ALTER TABLE turns ADD CONSTRAINT turns_status_check CHECK (status IN ('running', 'awaiting_input',
    'max_handoffs', 'guardrail_tripped', 'completed', 'failed', 'max_steps', 'cancelled', 'awaiting_approval')) NOT VALID;
DROP DOMAIN turn_status;
