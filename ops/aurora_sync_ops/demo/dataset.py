"""The demo's source database: a small shop that looks like a real product's schema.

Seven related tables, about 100,000 rows in all, with every interesting type of the type map, a
soft-delete column (customers), an awkward mixed-case table and column names (``"Order Items"``),
two tables without any timestamp (``countries``, refreshed in full; ``wishlist``, a join table
with a composite key found by row versions, ``xmin``), and the changes a real day brings:
inserts, updates, soft deletes, hard deletes (orders, wishlist, countries), and a transaction
that commits late with an old ``updated_at`` (the case cursor-based tools lose).
"""

from __future__ import annotations

from typing import Any

import psycopg2
from psycopg2 import sql

SCHEMA = "shop"

ROWS = {
    "customers": 5_000,
    "products": 500,
    "orders": 20_000,
    "Order Items": 40_000,
    "events": 35_000,
    "countries": 5,
    "wishlist": 4_000,
}

DDL = """
DROP SCHEMA IF EXISTS shop CASCADE;
CREATE SCHEMA shop;
CREATE TYPE shop.order_status AS ENUM ('open', 'paid', 'shipped', 'cancelled');

CREATE TABLE shop.customers (
    id            bigint PRIMARY KEY,
    email         text NOT NULL,
    full_name     text,
    country       char(2),
    marketing_opt boolean NOT NULL DEFAULT false,
    signup_ip     inet,
    deleted_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shop.products (
    id             uuid PRIMARY KEY,
    sku            varchar(32) NOT NULL,
    name           text NOT NULL,
    price          numeric(12,2) NOT NULL,
    weight_kg      real,
    rating         double precision,
    attributes     jsonb,
    legacy_payload json,
    tags           text[],
    dimensions_cm  integer[],
    thumbnail      bytea,
    launch_date    date,
    restock_time   time,
    warranty       interval,
    supplier_net   cidr,
    exact_cost     numeric,
    available_from timestamp,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shop.orders (
    id          bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES shop.customers (id),
    status      shop.order_status NOT NULL,
    total       numeric(14,2) NOT NULL,
    currency    char(3) NOT NULL DEFAULT 'EUR',
    notes       text,
    placed_at   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shop."Order Items" (
    "Order ID"   bigint NOT NULL REFERENCES shop.orders (id),
    "Line No"    integer NOT NULL,
    "Product ID" uuid NOT NULL REFERENCES shop.products (id),
    "Qty"        integer NOT NULL,
    "Unit Price" numeric(12,2) NOT NULL,
    "Gift-Wrap?" boolean,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("Order ID", "Line No")
);

CREATE TABLE shop.events (
    id          bigint PRIMARY KEY,
    customer_id bigint,
    kind        text NOT NULL,
    payload     jsonb,
    occurred_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Tables as legacy schemas have them: no timestamp, only keys.
CREATE TABLE shop.countries (
    iso  char(2) PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE shop.wishlist (
    customer_id bigint,
    sku         text,
    note        text,
    PRIMARY KEY (customer_id, sku)
);
"""

# Deterministic data: the same demo run gives the same figures.
LOAD = """
INSERT INTO shop.customers (id, email, full_name, country, marketing_opt, signup_ip, created_at, updated_at)
SELECT i, 'customer' || i || '@example.com',
       CASE WHEN mod(i, 50) = 0 THEN '' WHEN mod(i, 97) = 0 THEN NULL ELSE 'Customer ' || i END,
       (ARRAY['DE','FR','US','GB','NL'])[1 + mod(i, 5)], mod(i, 3) = 0,
       ('10.' || (mod(i, 256)) || '.' || mod(i / 256, 256) || '.1')::inet,
       timestamptz '2025-01-01' + i * interval '37 minutes',
       timestamptz '2025-01-01' + i * interval '37 minutes'
FROM generate_series(1, %(customers)s) i;

INSERT INTO shop.products
SELECT md5('product' || i)::uuid, 'SKU-' || lpad(i::text, 6, '0'), 'Product "' || i || '", the ' || i || 'th',
       round((mod(i, 1000)) * 1.37 + 0.99, 2), (mod(i, 40)) / 4.0,
       CASE WHEN i = 1 THEN 'NaN'::float8 WHEN i = 2 THEN 'Infinity'::float8 ELSE i / 7.0 END,
       jsonb_build_object('color', (ARRAY['red','green','blue'])[1 + mod(i, 3)], 'size', mod(i, 5),
                          'eco', mod(i, 2) = 0),
       ('{"legacy":  true, "id": ' || i || '}')::json,
       ARRAY['tag' || (mod(i, 10)), 'with,comma', ''], ARRAY[mod(i, 100), mod((i * 3), 100), 7],
       decode(md5(i::text), 'hex'), date '2024-01-01' + i, time '08:00' + i * interval '1 minute',
       make_interval(months => mod(i, 24), days => mod(i, 30)),
       ('192.168.' || (mod(i, 256)) || '.0/24')::cidr,
       CASE WHEN i = 3 THEN 'NaN'::numeric ELSE i * 1.000000001 END,
       timestamp '2024-06-01 09:00' + i * interval '1 hour',
       timestamptz '2025-01-01' + i * interval '11 minutes'
FROM generate_series(1, %(products)s) i;

INSERT INTO shop.orders (id, customer_id, status, total, notes, placed_at, updated_at)
SELECT i, 1 + mod(i * 7, %(customers)s),
       (ARRAY['open','paid','shipped','cancelled'])[1 + mod(i, 4)]::shop.order_status,
       round(((mod(i, 500)) * 3.17 + 5)::numeric, 2),
       CASE WHEN mod(i, 10) = 0 THEN 'Please ring twice.
Second line, with "quotes".' END,
       timestamptz '2025-03-01' + i * interval '13 minutes',
       timestamptz '2025-03-01' + i * interval '13 minutes'
FROM generate_series(1, %(orders)s) i;

INSERT INTO shop."Order Items"
SELECT o.id, l, md5('product' || (1 + mod(o.id * l, %(products)s)))::uuid, 1 + mod((o.id + l), 4),
       round((mod((o.id * l), 200) + 0.5)::numeric, 2), CASE WHEN l = 1 THEN mod(o.id, 2) = 0 END,
       timestamptz '2025-03-01' + o.id * interval '13 minutes'
FROM generate_series(1, %(orders)s) o(id), generate_series(1, %(lines_per_order)s) l;

INSERT INTO shop.events
SELECT i, 1 + mod(i, %(customers)s), (ARRAY['view','click','search','checkout'])[1 + mod(i, 4)],
       jsonb_build_object('page', '/p/' || (mod(i, 300)), 'ms', mod(i, 997)),
       timestamptz '2025-04-01' + i * interval '90 seconds',
       timestamptz '2025-04-01' + i * interval '90 seconds'
FROM generate_series(1, %(events)s) i;

INSERT INTO shop.countries VALUES ('DE', 'Germany'), ('FR', 'France'), ('US', 'United States'),
    ('GB', 'United Kingdom'), ('NL', 'Netherlands');

INSERT INTO shop.wishlist
SELECT c, 'SKU-' || lpad((1 + mod(c * 7 + w * 131, 500))::text, 6, '0'), CASE WHEN w = 1 THEN 'gift idea' END
FROM generate_series(1, 1000) c, generate_series(1, 4) w;
"""

INDEXES = [
    ("customers", "updated_at"),
    ("products", "updated_at"),
    ("orders", "updated_at"),
    ("Order Items", "updated_at"),
    ("events", "updated_at"),
]

# The table configs the demo pushes to SSM (what a data engineer writes).
CONFIGS: dict[str, dict[str, Any]] = {
    "customers": {
        "schema": SCHEMA,
        "table": "customers",
        "primary_key": ["id"],
        "soft_delete_column": "deleted_at",
        "soft_delete_mode": "delete",
    },
    "products": {"schema": SCHEMA, "table": "products", "primary_key": ["id"]},
    "orders": {
        "schema": SCHEMA,
        "table": "orders",
        "primary_key": ["id"],
        "lookback_seconds": 900,
        "hard_deletes": "reconcile",
    },
    "order_items": {
        "schema": SCHEMA,
        "table": "Order Items",
        "primary_key": ["Order ID", "Line No"],
        "max_rows_per_chunk": 20_000,
        "hard_deletes": "reconcile",
    },
    "events": {
        "schema": SCHEMA,
        "table": "events",
        "primary_key": ["id"],
        "columns": ["id", "customer_id", "kind", "payload", "occurred_at", "updated_at"],
    },
    "countries": {"schema": SCHEMA, "table": "countries", "primary_key": ["iso"], "mode": "full"},
    "wishlist": {
        "schema": SCHEMA,
        "table": "wishlist",
        "primary_key": ["customer_id", "sku"],
        "mode": "xmin",
        "hard_deletes": "reconcile",
    },
}


def create(admin_dsn: str, sync_role: str) -> int:
    """(Re)create the shop schema with its rows; returns the total row count."""
    lines_per_order = ROWS["Order Items"] // ROWS["orders"]
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(DDL)
            cur.execute(
                LOAD,
                {
                    "customers": ROWS["customers"],
                    "products": ROWS["products"],
                    "orders": ROWS["orders"],
                    "lines_per_order": lines_per_order,
                    "events": ROWS["events"],
                },
            )
            for table, column in INDEXES:
                cur.execute(
                    sql.SQL("CREATE INDEX ON {} ({})").format(
                        sql.Identifier(SCHEMA, table), sql.Identifier(column)
                    )
                )
            role = sql.Identifier(sync_role)
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(SCHEMA), role))
            cur.execute(
                sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(sql.Identifier(SCHEMA), role)
            )
            cur.execute("ANALYZE")
            total = 0
            for table in ROWS:
                cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, table)))
                (count,) = cur.fetchone() or (0,)
                total += int(count)
        return total
    finally:
        conn.close()


class LateCommit:
    """A transaction that stamps ``updated_at = now()`` and commits only after a sync has run:
    its rows carry a timestamp older than rows already exported."""

    def __init__(self, admin_dsn: str) -> None:
        self.conn = psycopg2.connect(admin_dsn)

    def begin(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                "UPDATE shop.orders SET status = 'paid', notes = 'paid late (committed after a sync)', "
                "updated_at = now() WHERE id BETWEEN 101 AND 110"
            )

    def commit(self) -> None:
        self.conn.commit()
        self.conn.close()


def burst(admin_dsn: str) -> dict[str, int]:
    """A day's changes. Returns what was changed, per kind."""
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    changed: dict[str, int] = {}
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO shop.customers (id, email, full_name, country) "
                "SELECT i, 'new' || i || '@example.com', 'New ' || i, 'US' "
                "FROM generate_series(100001, 100200) i"
            )
            changed["customers inserted"] = cur.rowcount
            cur.execute(
                "UPDATE shop.customers SET deleted_at = now(), updated_at = now() WHERE mod(id, 500) = 0"
            )
            changed["customers soft-deleted"] = cur.rowcount
            cur.execute(
                "UPDATE shop.orders SET status = 'shipped', updated_at = now() "
                "WHERE mod(id, 97) = 0 AND status = 'paid'"
            )
            changed["orders updated"] = cur.rowcount
            cur.execute(
                "INSERT INTO shop.orders (id, customer_id, status, total, placed_at) "
                "SELECT i, 1 + i % 5000, 'open', 42.00, now() FROM generate_series(100001, 100500) i"
            )
            changed["orders inserted"] = cur.rowcount
            cur.execute(
                'UPDATE shop."Order Items" SET "Qty" = "Qty" + 1, updated_at = now() '
                'WHERE mod("Order ID", 211) = 0'
            )
            changed["order items updated"] = cur.rowcount
            cur.execute(
                "UPDATE shop.products SET price = price * 1.10, "
                "attributes = attributes || '{\"sale\": false}', updated_at = now() WHERE sku LIKE '%7'"
            )
            changed["products repriced"] = cur.rowcount
            cur.execute(
                "INSERT INTO shop.events "
                "SELECT i, 1 + mod(i, 5000), 'purchase', '{\"demo\": true}', now(), now() "
                "FROM generate_series(1000001, 1001000) i"
            )
            changed["events inserted"] = cur.rowcount
            # An order removed with its lines, as the application does (the lines reference it).
            cur.execute('DELETE FROM shop."Order Items" WHERE mod("Order ID", 1000) = 0')
            changed["order items deleted"] = cur.rowcount
            cur.execute("DELETE FROM shop.orders WHERE mod(id, 1000) = 0")
            changed["orders deleted"] = cur.rowcount
            cur.execute("DELETE FROM shop.wishlist WHERE mod(customer_id, 100) = 0")
            changed["wishlist rows deleted"] = cur.rowcount
            cur.execute(
                "INSERT INTO shop.wishlist SELECT c, 'SKU-000001', 'added today' "
                "FROM generate_series(1001, 1050) c"
            )
            changed["wishlist rows inserted"] = cur.rowcount
            cur.execute("UPDATE shop.wishlist SET note = 'bought' WHERE customer_id = 7")
            changed["wishlist rows updated"] = cur.rowcount
            cur.execute("DELETE FROM shop.countries WHERE iso = 'NL'")
            cur.execute("UPDATE shop.countries SET name = 'Deutschland' WHERE iso = 'DE'")
            cur.execute("INSERT INTO shop.countries VALUES ('IT', 'Italy')")
            changed["countries changed"] = 3
    finally:
        conn.close()
    return changed
