"""row timestamps: created_at and updated_at on heroes, users and items, set by the database

Revision ID: 0004
Revises: 0003
Created: 2026-12-03

The database sets both, whoever writes the row (heroapi, a script, an operator's SQL), so they
can be trusted; heroapi never sends them. At an INSERT, a server default. At an UPDATE:
- MariaDB: `ON UPDATE CURRENT_TIMESTAMP(6)`, its own way (a trigger there needs SUPER or
  `log_bin_trust_function_creators` wherever binary logging is on, i.e. on any replicated server);
- PostgreSQL and SQLite have no such clause: a trigger.
On all three, an UPDATE that sets `updated_at` itself keeps the value it gave (a restore, a data
load), as MariaDB's clause does. MariaDB and PostgreSQL leave it alone when the UPDATE changes
nothing; SQLite's trigger cannot compare whole rows and moves it on any UPDATE of the row.

Rows that exist already get the time of this migration for both.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("hero", "users", "items")
TIMESTAMP = sa.DateTime(timezone=True).with_variant(mysql.TIMESTAMP(fsp=6), "mysql")
UTC_NOW = {
    "sqlite": "(strftime('%Y-%m-%d %H:%M:%f', 'now'))",
    "postgresql": "now()",
    "mysql": "CURRENT_TIMESTAMP(6)",
}

# PostgreSQL: one function for the three tables' triggers. `now()` is the transaction's start,
# as the server defaults give it: the rows one transaction writes share one time.
PG_FUNCTION = """
CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$
"""
PG_TRIGGER = """
CREATE TRIGGER {table}_updated_at BEFORE UPDATE ON {table}
FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION set_updated_at()
"""
# SQLite: AFTER the row is written, stamp it again, unless the UPDATE set the stamp itself
# (which also stops the trigger's own UPDATE from firing it again if recursive_triggers is on).
SQLITE_TRIGGER = """
CREATE TRIGGER {table}_updated_at AFTER UPDATE ON {table}
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE {table} SET updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = NEW.id;
END
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    now = UTC_NOW[dialect]
    on_update = f"{now} ON UPDATE {now}" if dialect == "mysql" else now
    columns = (("created_at", now), ("updated_at", on_update))
    for table in TABLES:
        if dialect == "sqlite":
            # SQLite adds no column whose default is not a constant: the table is copied, and
            # the copy keeps AUTOINCREMENT (0003).
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ) as batch_op:
                for name, default in columns:
                    batch_op.add_column(
                        sa.Column(name, TIMESTAMP, nullable=False, server_default=sa.text(default))
                    )
            op.execute(SQLITE_TRIGGER.format(table=table))
            continue
        for name, default in columns:
            op.add_column(
                table, sa.Column(name, TIMESTAMP, nullable=False, server_default=sa.text(default))
            )
        if dialect == "mysql":
            # Each ADD COLUMN read the clock on its own: the existing rows' two stamps are made
            # one (an UPDATE that sets `updated_at` itself keeps it, even against ON UPDATE).
            op.execute(f"UPDATE {table} SET updated_at = created_at")  # noqa: S608 (TABLES)
    if dialect == "postgresql":
        op.execute(PG_FUNCTION)
        for table in TABLES:
            op.execute(PG_TRIGGER.format(table=table))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in TABLES:
        if dialect != "mysql":
            op.execute(
                f"DROP TRIGGER {table}_updated_at"
                + (f" ON {table}" if dialect == "postgresql" else "")
            )
        if dialect == "sqlite":
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ) as batch_op:
                batch_op.drop_column("updated_at")
                batch_op.drop_column("created_at")
            continue
        op.drop_column(table, "updated_at")
        op.drop_column(table, "created_at")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION set_updated_at()")
