"""When the line view looks again: at once on PostgreSQL (LISTEN/NOTIFY), by a bounded poll on SQLite.

On PostgreSQL the line view installs one statement-level trigger per table it shows (runs, the stations' states,
MSA studies) that calls ``pg_notify`` on :data:`CHANNEL`, so every writer — a station's plan process storing a
run, a station server publishing its state, ``rig msa`` — wakes the view without knowing of it; NOTIFY is sent
when the writing transaction commits (postgresql.org/docs/current/sql-notify.html). The view still looks every
:data:`FALLBACK_POLL_S` in case a notification was lost (a dropped listener connection is re-opened). SQLite has
no notifications: the view polls every :data:`SQLITE_POLL_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

CHANNEL = "rig_line"
NOTIFY_TABLES = ("runs", "station_status", "msa_studies")
FUNCTION = "rig_line_notify"
SQLITE_POLL_S = 1.0
FALLBACK_POLL_S = 5.0
RECONNECT_S = 30.0
_INSTALL_LOCK = 0x7269675F6C696E  # pg_advisory_xact_lock key ("rig_lin"): one installer at a time


def install_triggers(engine: Engine) -> bool:
    """Create (or replace) the notify function and the triggers missing on PostgreSQL; False on any other database.

    Triggers already there are left alone: creating one locks its table against writers for a moment."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _INSTALL_LOCK})
        conn.execute(
            sa.text(
                f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME); RETURN NULL; END $$"
            )
        )
        present = set(sa.inspect(conn).get_table_names())
        installed = set(conn.execute(sa.text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars())
        for table in NOTIFY_TABLES:
            trigger = f"{FUNCTION}_{table}"
            if table not in present or trigger in installed:
                continue
            conn.execute(
                sa.text(
                    f"CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {table} "
                    f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
                )
            )
    return True


class StoreChanges:
    """Wait for the store to change: :meth:`wait` returns True on a notification, False when it is time to poll."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.listening = install_triggers(engine)
        self._conn: object | None = None  # psycopg.AsyncConnection while listening
        self._retry_at = 0.0

    async def _connect(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        await conn.execute(f"LISTEN {CHANNEL}")
        self._conn = conn

    async def wait(self) -> bool:
        """Until a change is notified (True) or the poll interval passes (False)."""
        if not self.listening:
            await asyncio.sleep(SQLITE_POLL_S)
            return False
        loop = asyncio.get_running_loop()
        if self._conn is None and loop.time() >= self._retry_at:
            try:
                await self._connect()
            except Exception as exc:  # the database is away: poll, and try again later
                log.warning("line view: cannot LISTEN on %s (%s); polling", CHANNEL, exc)
                self._retry_at = loop.time() + RECONNECT_S
        if self._conn is None:
            await asyncio.sleep(FALLBACK_POLL_S)
            return False
        try:
            async for _notice in self._conn.notifies(timeout=FALLBACK_POLL_S, stop_after=1):  # type: ignore[attr-defined]
                return True
        except Exception as exc:
            log.warning("line view: lost the LISTEN connection (%s); polling", exc)
            await self.close()
        return False

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()  # type: ignore[attr-defined]
