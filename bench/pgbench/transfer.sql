-- A short write transaction: move an account's balance and upsert a new account.
-- pgbench -D sets :accounts (rows filled before the load, ids 1..accounts), :hot and :hot_percent.
-- Every client writes the same few hot rows (ids 1..hot) most of the time, so transactions on one
-- row queue behind each other and behind late_commit.sql, and the same row is committed by many
-- clients between two syncs. The rest of the time it is any row of the table.
-- Deadlock-free by construction: each transaction locks one existing row (id <= accounts), then
-- one new id (> accounts), always in ascending id order, the order late_commit.sql locks in too.
\set id random(1, :accounts)
\if random(1, 100) <= :hot_percent
\set id random(1, :hot)
\endif
\set new_id :accounts + random(1, 100000)
\set delta random(-50000, 50000)
BEGIN;
UPDATE accounts SET balance = balance + :delta / 100.0, updated_at = now() WHERE id = :id;
INSERT INTO accounts (id, balance, note, updated_at) VALUES (:new_id, :delta / 100.0, 'opened', now())
    ON CONFLICT (id) DO UPDATE
    SET balance = accounts.balance + excluded.balance, note = 'topped up', updated_at = now();
COMMIT;
