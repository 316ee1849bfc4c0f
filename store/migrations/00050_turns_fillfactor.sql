-- A step's update of its running turn (steps, tokens, timings, lease)
-- changes no indexed column, so Postgres can make it heap-only (HOT): no
-- index entry is written, if the row's page has room for the new version.
-- Inserts fill a page to its fillfactor; 80 leaves every new page of turns
-- a fifth free for the updates of the rows it holds. (The end's update
-- changes status, which turns_one_running and turns_awaiting filter on:
-- it cannot be HOT.) Pages written before keep what they hold.

-- +goose Up
ALTER TABLE turns SET (fillfactor = 80);

-- +goose Down
ALTER TABLE turns RESET (fillfactor);
