-- A late commit: the UPDATE stamps updated_at with now(), the transaction's start, and the
-- transaction stays open 2 s, so it commits after rows with later stamps may have been synced.
\set lane :client_id % :lanes
\set id 1 + :lane + :lanes * random(0, :accounts / :lanes - 1)
\set delta random(1, 10000)
BEGIN;
UPDATE accounts SET balance = balance - :delta / 100.0, note = 'late', updated_at = now() WHERE id = :id;
\sleep 2 s
COMMIT;
