-- A cancel asked of an instance that does not run the turn is recorded on
-- the turn, and announced with NOTIFY switchboard_cancel: the instance
-- running it listens, and also reads the flag when it renews the turn's
-- lease, should it have missed the notification.

-- +goose Up
ALTER TABLE turns ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE turns DROP COLUMN cancel_requested;
