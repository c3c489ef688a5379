"""Randomized parity: hypothesis drives random changes, late commits and faults through the real
state machine on one world, and FINAL must equal the source after every sync.

Two tables: ``items`` (soft delete in ``delete`` mode, the default 900 s lookback, a transaction
held open across syncs and committed late with its old ``now()`` stamps) and ``pairs`` (composite
key, boolean soft delete in ``flag`` mode, a 2 s lookback so boundary ties are really at the
boundary, and more rows than one export chunk so whole-table updates put a tie across the chunk
boundary). Faults: lost S3 notifications (healed by the verifier's ALTER PIPE ... REFRESH), a
malformed file dropped into a table's prefix (rejected by Snowpipe, ignored by the verifier: it
only reconciles the files it exported), and a Vault outage (OpenBao stopped with SIGSTOP) while a
freshly deployed, cold copy of the functions has to log in: OpenBao resumes after one or two
attempts failed with SecretsUnavailable, and the state machine's retries carry the run through.

Knobs: ``AURORA_SYNC_PARITY_EXAMPLES`` (examples, default 3) and ``AURORA_SYNC_PARITY_STEPS``
(rules per example, default 8); the summary line (``pytest -s``) lists the rules run and their time.
Shrinking is off (steps run real syncs); a failure prints the steps hypothesis ran, which replay
as plain method calls, as the fixed-order test does.
"""

from __future__ import annotations

import functools
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, ParamSpec

import psycopg2
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test
from psycopg2 import sql
from world import World, admin_client, open_world, verify_output

from aurora_sync_ops.local.engine import LocalEngine
from aurora_sync_ops.local.wiring import connect_bucket_to_snowpipe, disconnect_bucket_from_snowpipe

P = ParamSpec("P")
EXAMPLES = int(os.environ.get("AURORA_SYNC_PARITY_EXAMPLES") or 3)
STEPS = int(os.environ.get("AURORA_SYNC_PARITY_STEPS") or 8)

# Config names are the S3 prefixes and pipes of a kept stack outlive their world: unique per run.
TAG = uuid.uuid4().hex[:6]
ITEMS, PAIRS = f"items_{TAG}", f"pairs_{TAG}"
ITEM_IDS = st.integers(1, 40)
# Each outage needs a fresh deployment whose cold workers (~135 MB each) idle for 10 minutes.
VAULT_OUTAGES = {"left": 2}
BULK_PAIRS = 1200  # more than one export chunk (max_rows_per_chunk is at least 1000)

# PostgreSQL text cannot hold NUL; surrogates are not encodable. Everything else goes: quotes,
# commas, newlines, backslashes, the CSV NULL marker's look-alikes.
TEXT = st.one_of(
    st.none(),
    st.sampled_from(["", "\\N", "NULL", '"', "a,b", "line\nbreak", "cr\r\nlf", "\\", " pad "]),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12),
)
AMOUNT = st.one_of(
    st.none(),
    st.decimals(Decimal("-99999999.99"), Decimal("99999999.99"), places=2, allow_nan=False),
)
PAIR_B = st.sampled_from(["x", "y", "", "a,b", 'q"uote', "line\nbreak", "ü", " "])
MALFORMED = st.sampled_from(
    [
        b"1,2\n",  # too few columns
        b"not-a-number,v,1.00,,2024-01-01 00:00:00+00,\n",  # the key is a bigint
        b'7,"unterminated,1.00,,2024-01-01 00:00:00+00,\n',
        b"\xff\xfe\x00garbage\n",
    ]
)


@pytest.fixture(scope="module")
def world(stack: dict[str, Any]) -> Iterator[World]:
    tables: dict[str, tuple[str, dict[str, Any]]] = {
        ITEMS: (
            "CREATE TABLE {schema}.items (id bigint PRIMARY KEY, v text, n numeric(10,2), "
            "deleted_at timestamptz, updated_at timestamptz NOT NULL DEFAULT now())",
            {"table": "items", "primary_key": ["id"], "soft_delete_column": "deleted_at"},
        ),
        PAIRS: (
            "CREATE TABLE {schema}.pairs (a integer, b text, qty integer, "
            "gone boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now(), "
            "PRIMARY KEY (a, b))",
            {
                "table": "pairs",
                "primary_key": ["a", "b"],
                "soft_delete_column": "gone",
                "soft_delete_mode": "flag",
                "lookback_seconds": 2,
                "max_rows_per_chunk": 1000,
            },
        ),
    }
    with open_world(stack, tables, prefix="rnd") as world:
        world.execute(
            "INSERT INTO {schema}.items (id, v, n) "
            "SELECT i, 'item ' || i, i * 1.5 FROM generate_series(1, 20) i"
        )
        world.execute(
            "INSERT INTO {schema}.pairs (a, b, qty) SELECT i, 'bulk', i FROM generate_series(100, %s) i",
            (99 + BULK_PAIRS,),
        )
        world.apply()
        description, _ = world.run()
        assert description["status"] == "SUCCEEDED", description
        world.assert_parity()
        yield world


RAN: dict[str, list[float]] = {}  # rule -> durations, for the run's summary


def timed(step: Callable[P, None]) -> Callable[P, None]:
    @functools.wraps(step)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        started = time.monotonic()
        step(*args, **kwargs)
        RAN.setdefault(step.__name__, []).append(time.monotonic() - started)

    return run


class ParitySync(RuleBasedStateMachine):
    world: ClassVar[World]
    openbao_pid: ClassVar[int]

    def __init__(self) -> None:
        super().__init__()
        self.late: Any = None  # a connection with an uncommitted transaction
        self.locked: list[int] = []  # items rows the late transaction holds: others must not wait on them
        self.synced_since_late = False

    # --- changes ------------------------------------------------------------------------------
    @rule(rows=st.lists(st.tuples(ITEM_IDS, TEXT, AMOUNT), min_size=1, max_size=5))
    @timed
    def insert_items(self, rows: list[tuple[int, str | None, Decimal | None]]) -> None:
        for id_, v, n in rows:
            if id_ not in self.locked:
                self.world.execute(
                    "INSERT INTO {schema}.items (id, v, n) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                    (id_, v, n),
                )

    @rule(ids=st.lists(ITEM_IDS, min_size=1, max_size=6), v=TEXT, n=AMOUNT)
    @timed
    def update_items(self, ids: list[int], v: str | None, n: Decimal | None) -> None:
        self.world.execute(
            "UPDATE {schema}.items SET v = %s, n = %s, updated_at = now() "
            "WHERE id = ANY(%s) AND NOT id = ANY(%s)",
            (v, n, ids, self.locked),
        )

    @rule(ids=st.lists(ITEM_IDS, min_size=1, max_size=4))
    @timed
    def soft_delete_items(self, ids: list[int]) -> None:
        self.world.execute(
            "UPDATE {schema}.items SET deleted_at = now(), updated_at = now() "
            "WHERE id = ANY(%s) AND NOT id = ANY(%s) AND deleted_at IS NULL",
            (ids, self.locked),
        )

    @rule(ids=st.lists(ITEM_IDS, min_size=1, max_size=4))
    @timed
    def restore_items(self, ids: list[int]) -> None:
        self.world.execute(
            "UPDATE {schema}.items SET deleted_at = NULL, updated_at = now() "
            "WHERE id = ANY(%s) AND NOT id = ANY(%s) AND deleted_at IS NOT NULL",
            (ids, self.locked),
        )

    @rule(rows=st.lists(st.tuples(st.integers(1, 30), PAIR_B, st.integers(-5, 5)), min_size=1, max_size=5))
    @timed
    def upsert_pairs(self, rows: list[tuple[int, str, int]]) -> None:
        for a, b, qty in rows:
            self.world.execute(
                "INSERT INTO {schema}.pairs (a, b, qty) VALUES (%s, %s, %s) ON CONFLICT (a, b) "
                "DO UPDATE SET qty = EXCLUDED.qty, gone = false, updated_at = now()",
                (a, b, qty),
            )

    @rule(a=st.integers(1, 30), gone=st.booleans())
    @timed
    def flag_pairs(self, a: int, gone: bool) -> None:
        self.world.execute("UPDATE {schema}.pairs SET gone = %s, updated_at = now() WHERE a <= %s", (gone, a))

    @rule()
    @timed
    def touch_every_pair(self) -> None:
        # One statement, one now(): more rows share this cursor value than fit in one chunk.
        self.world.execute("UPDATE {schema}.pairs SET qty = qty + 1, updated_at = now()")

    @rule(a=st.integers(1, 30), qty=st.integers(-5, 5), table=st.sampled_from(["items", "pairs"]))
    @timed
    def update_at_the_boundary(self, a: int, qty: int, table: str) -> None:
        # The row takes the table's current MAX(cursor): the value the watermark will have.
        if table == "pairs":
            self.world.execute(
                "UPDATE {schema}.pairs SET qty = %s, "
                "updated_at = (SELECT max(updated_at) FROM {schema}.pairs) WHERE a = %s",
                (qty, a),
            )
        else:
            self.world.execute(
                "UPDATE {schema}.items SET n = %s, "
                "updated_at = (SELECT max(updated_at) FROM {schema}.items) "
                "WHERE id = %s AND NOT id = ANY(%s)",
                (qty, a, self.locked),
            )

    # --- a transaction that commits late -----------------------------------------------------
    @precondition(lambda self: self.late is None)
    @rule(ids=st.lists(ITEM_IDS, min_size=1, max_size=4, unique=True), v=TEXT)
    @timed
    def open_late_transaction(self, ids: list[int], v: str | None) -> None:
        late = psycopg2.connect(self.world.status["postgres"]["admin_dsn"])
        table = sql.Identifier(self.world.schema, "items")
        with late.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "UPDATE {} SET v = %s, deleted_at = NULL, updated_at = now() WHERE id = ANY(%s)"
                ).format(table),
                (v, ids),
            )
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (id, v) SELECT i, 'late' FROM unnest(%s::bigint[]) i "
                    "ON CONFLICT DO NOTHING"
                ).format(table),
                (ids,),
            )
        self.late, self.locked, self.synced_since_late = late, ids, False

    @precondition(lambda self: self.late is not None and self.synced_since_late)
    @rule()
    @timed
    def commit_late_transaction(self) -> None:
        self.late.commit()
        self.late.close()
        self.late, self.locked = None, []

    # --- syncs and faults ---------------------------------------------------------------------
    def sync(self, execution_input: dict[str, Any] | None = None) -> dict[str, Any]:
        description, events = self.world.run(execution_input)
        assert description["status"] == "SUCCEEDED", description
        self.synced_since_late = self.late is not None
        # The committed source is what the export snapshot sees, open transaction or not.
        self.world.assert_parity()
        return verify_output(events)

    @rule()
    @timed
    def clean_sync(self) -> None:
        report = self.sync()
        assert {t["table"]: t["outcome"] for t in report["tables"]} == {ITEMS: "MERGED", PAIRS: "MERGED"}

    @rule()
    @timed
    def sync_losing_notifications(self) -> None:
        disconnect_bucket_from_snowpipe(self.world.status)
        try:
            report = self.sync()
        finally:
            connect_bucket_to_snowpipe(self.world.status)
        for table in report["tables"]:
            if table["rows_exported"]:
                assert table["refreshed_at"] is not None, table

    @rule(table=st.sampled_from([ITEMS, PAIRS]), body=MALFORMED)
    @timed
    def drop_a_malformed_file(self, table: str, body: bytes) -> None:
        now = datetime.now(UTC)
        key = f"{table}/{now:%Y/%m/%d/%H}/bad-{uuid.uuid4()}.csv"
        aws = self.world.status["aws"]
        admin_client(self.world.status, "s3").put_object(Bucket=aws["bucket"], Key=key, Body=body)
        status = self.load_status(table, key)
        assert status == "Load failed", (key, status)
        self.sync()

    def load_status(self, table: str, key: str) -> str | None:
        staging = f"{self.world.setup.staging_schema}.{self.world.configs[table]['target']}"
        cur = self.world.warehouse.cursor()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            cur.execute(
                f"SELECT FILE_NAME, STATUS FROM TABLE({self.world.setup.database}"
                f".INFORMATION_SCHEMA.COPY_HISTORY(TABLE_NAME => '{staging}', "
                "START_TIME => DATEADD(hours, -1, CURRENT_TIMESTAMP())))"
            )
            for file_name, status in cur.fetchall():
                if key.endswith(str(file_name)) and status != "Load in progress":
                    return str(status)
            time.sleep(0.2)
        return None

    @precondition(lambda self: VAULT_OUTAGES["left"] > 0)
    @rule(failures=st.integers(1, 2))
    @timed
    def sync_through_a_vault_outage(self, failures: int) -> None:
        """OpenBao frozen until ``failures`` attempts failed with SecretsUnavailable; the retries heal."""
        VAULT_OUTAGES["left"] -= 1
        # Warm functions serve secrets from their cache; a new deployment's cold functions must
        # log in while OpenBao is frozen, so the outage is really in the run's way.
        cold = LocalEngine(
            self.world.status,
            parameters=self.world.engine.parameters,
            stack_name=f"rnd-cold-{uuid.uuid4().hex[:6]}",
        )
        deployment = cold.deploy()
        errors: list[str] = []
        description: dict[str, Any] = {}
        os.kill(self.openbao_pid, signal.SIGSTOP)
        try:
            arn = cold.start(deployment, {})
            for event in cold.follow(arn, timeout_s=240, poll_s=0.3):
                if "taskFailedEventDetails" in event:
                    errors.append(event["taskFailedEventDetails"]["error"])
                    if len(errors) == failures:
                        os.kill(self.openbao_pid, signal.SIGCONT)
                if event.get("type") == "ExecutionDescription":
                    description = event["description"]
        finally:
            os.kill(self.openbao_pid, signal.SIGCONT)
        assert errors == ["SecretsUnavailable"] * failures, (errors, description)
        assert description["status"] == "SUCCEEDED", description
        self.world.assert_parity()

    @timed
    def teardown(self) -> None:
        # Every example ends settled: nothing left open, one clean sync, FINAL equals the source.
        if self.late is not None:
            self.late.commit()
            self.late.close()
            self.late, self.locked = None, []
        self.sync()


def test_every_change_and_fault_once_in_a_fixed_order(world: World, stack: dict[str, Any]) -> None:
    # The random run's early examples are small; this one guarantees every fault runs in CI.
    ParitySync.world = world
    ParitySync.openbao_pid = int(stack["services"]["openbao"]["pid"])
    machine = ParitySync()
    machine.insert_items(rows=[(41, 'a,"b"\n', Decimal("1.25")), (42, None, None), (43, "", Decimal(0))])
    machine.open_late_transaction(ids=[1, 41], v="late")
    machine.update_at_the_boundary(a=2, qty=3, table="items")
    machine.touch_every_pair()
    machine.clean_sync()
    machine.soft_delete_items(ids=[3, 4, 42])
    machine.update_at_the_boundary(a=100, qty=9, table="pairs")
    machine.commit_late_transaction()
    machine.sync_losing_notifications()
    machine.restore_items(ids=[3])
    machine.upsert_pairs(rows=[(1, "a,b", 2), (1, "", 0), (2, "line\nbreak", -1)])
    machine.flag_pairs(a=1, gone=True)
    machine.drop_a_malformed_file(table=PAIRS, body=b"1,2\n")
    machine.update_items(ids=[5, 43], v="\\N", n=Decimal("-0.01"))
    machine.sync_through_a_vault_outage(failures=1)
    machine.teardown()
    print("\n" + ", ".join(f"{name} {sum(times):.1f}s" for name, times in RAN.items()))


def test_random_changes_late_commits_and_faults_keep_final_equal_to_the_source(
    world: World, stack: dict[str, Any]
) -> None:
    ParitySync.world = world
    ParitySync.openbao_pid = int(stack["services"]["openbao"]["pid"])
    RAN.clear()
    started = time.monotonic()
    run_state_machine_as_test(
        ParitySync,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            phases=(Phase.explicit, Phase.generate),
            suppress_health_check=list(HealthCheck),
        ),
    )
    steps = ", ".join(f"{name} x{len(times)} ({sum(times):.0f}s)" for name, times in sorted(RAN.items()))
    print(f"\n{EXAMPLES} examples of up to {STEPS} steps in {time.monotonic() - started:.0f}s: {steps}")
