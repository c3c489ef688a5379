-- A late commit on two hot rows x < y (ids 1..:hot, written by every client). pgbench -D sets :hot
-- and :linger (seconds). now() is the transaction's start, so both rows get that stamp. The
-- transaction updates x at once and holds its row lock for :linger s: other clients that update x
-- wait, and the syncs running meanwhile see it open. Only then does it update y, which other
-- clients have updated and committed during those seconds with later stamps (and a sync may have
-- exported): y's newest committed version carries an older updated_at than the one it replaces.
-- Commit order and stamp order disagree on the same row, which a MERGE keeping the newest
-- updated_at would get wrong.
-- Rows are locked in ascending id order, as transfer.sql does, so no two transactions deadlock.
\set x random(1, :hot - 1)
\set y random(:x + 1, :hot)
\set delta random(1, 10000)
BEGIN;
UPDATE accounts SET balance = balance - :delta / 100.0, note = 'late', updated_at = now() WHERE id = :x;
\sleep :linger s
UPDATE accounts SET balance = balance + :delta / 100.0, note = 'late', updated_at = now() WHERE id = :y;
COMMIT;
