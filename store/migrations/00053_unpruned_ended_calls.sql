-- Retention prunes the payloads of ended calls only: a running call's
-- result is still to be written, and pruning its arguments under it left a
-- row whose result came after its prune. The partial index that finds the
-- oldest unpruned rows now holds ended calls only, so a call's start (a
-- running row) writes no entry into it and its end writes one: the ledger's
-- finishing update is not HOT (its status is in other indexes) and wrote
-- the old index's entry a second time.
--
-- Built CONCURRENTLY, as 00013 does, so that instances still serving keep
-- writing the ledger while a new one migrates.

-- +goose NO TRANSACTION
-- +goose Up
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_unpruned_ended;
CREATE INDEX CONCURRENTLY tool_calls_unpruned_ended ON tool_calls (started_at) WHERE NOT payload_pruned AND finished_at IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_unpruned;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_unpruned;
CREATE INDEX CONCURRENTLY tool_calls_unpruned ON tool_calls (started_at) WHERE NOT payload_pruned;
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_unpruned_ended;
