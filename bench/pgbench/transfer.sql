-- A short write transaction: move an existing account's balance and upsert a new account.
-- pgbench -D sets :accounts (rows filled before the load, ids 1..accounts) and :lanes. Each client
-- writes only the ids of its lane, :client_id modulo :lanes (see bench/load_bench.py for why).
\set lane :client_id % :lanes
\set id 1 + :lane + :lanes * random(0, :accounts / :lanes - 1)
\set new_id :accounts + 1 + :lane + :lanes * random(0, 99999)
\set delta random(-50000, 50000)
BEGIN;
UPDATE accounts SET balance = balance + :delta / 100.0, updated_at = now() WHERE id = :id;
INSERT INTO accounts (id, balance, note, updated_at) VALUES (:new_id, :delta / 100.0, 'opened', now())
    ON CONFLICT (id) DO UPDATE
    SET balance = accounts.balance + excluded.balance, note = 'topped up', updated_at = now();
COMMIT;
