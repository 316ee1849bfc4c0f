-- A running turn's lease names its holder: the instance (an identity it
-- keeps across restarts) and the boot (one run of its process). An instance
-- that starts again knows that the turns an earlier boot of its left
-- running are dead, and fails them at once, instead of waiting for their
-- leases to run out; so does a cancel or a new turn of their conversations
-- on it.
--
-- Columns without a default: adding them rewrites nothing.

-- +goose Up
ALTER TABLE turns
    ADD COLUMN lease_instance TEXT,
    ADD COLUMN lease_boot UUID;

-- +goose Down
ALTER TABLE turns DROP COLUMN lease_boot, DROP COLUMN lease_instance;
