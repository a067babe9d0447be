"""The line view hears of a stored run from PostgreSQL itself (LISTEN/NOTIFY), and polls SQLite.

A run stored by another connection, as a station's plan process stores it, must wake a waiting listener with a
notification (True), where without a change the wait ends by its poll interval (False). The return value tells
the two apart, not the time it took.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from rig.results.store import open_store
from rig.web import notify
from rig.web.notify import NOTIFY_TABLES, StoreChanges, install_triggers
from rig.web.status import create_status_table
from tests.results.factory import BASE_TIME, make_run


def test_a_stored_run_is_notified_on_postgresql(postgres_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "FALLBACK_POLL_S", 0.5)
    with open_store(postgres_database) as store:
        create_status_table(store.engine)
        assert install_triggers(store.engine) and install_triggers(store.engine)  # idempotent
        with store.engine.connect() as conn:
            triggers = set(conn.execute(sa.text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars())
        assert {f"rig_line_notify_{t}" for t in NOTIFY_TABLES} <= triggers

        async def scenario() -> list[bool]:
            changes = StoreChanges(store.engine)
            try:
                seen = [await changes.wait()]  # listening now; nothing happened
                run = make_run(
                    np.random.default_rng(2), run_id="notify-1", unit_serial="XM12SU-990001", started=BASE_TIME
                )
                await asyncio.to_thread(store.add_run, run)  # another connection, committed
                seen.append(await changes.wait())
                seen.append(await changes.wait())  # one statement, one notification: then quiet again
                return seen
            finally:
                await changes.close()
                await asyncio.to_thread(store.delete_run, "notify-1")

        assert asyncio.run(scenario()) == [False, True, False]


def test_sqlite_has_no_notifications_and_polls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "SQLITE_POLL_S", 0.05)
    with open_store(f"sqlite:///{tmp_path / 'results.sqlite'}") as store:
        assert not install_triggers(store.engine)
        changes = StoreChanges(store.engine)
        assert not changes.listening
        assert asyncio.run(changes.wait()) is False
