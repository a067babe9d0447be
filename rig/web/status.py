"""Each station's live state in the results database, for the line view: one row per station.

The results store holds finished (and growing) runs; what a station is doing right now (idle, running step N,
waiting for the operator, ERROR) lives in this web-owned table beside the store's, written by the station server
whenever its run changes, so the line view needs no connection to the stations themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from rig.web.runner import RunView

status_metadata = sa.MetaData()

station_status_table = sa.Table(
    "station_status",
    status_metadata,
    sa.Column("station", sa.String(200), primary_key=True),
    sa.Column("url", sa.String(300)),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("step_no", sa.Integer),
    sa.Column("steps_total", sa.Integer),
    sa.Column("step_name", sa.String(200)),
    sa.Column("plan", sa.String(100)),
    sa.Column("run_id", sa.String(200)),
    sa.Column("unit_serial", sa.String(100)),
    sa.Column("verdict", sa.String(8)),
    sa.Column("golden_interval_h", sa.Float),  # the station file's golden_interval_h
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


class StationState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    WAITING = "waiting for operator"
    ERROR = "ERROR"


@dataclass(frozen=True)
class StationStatus:
    station: str
    state: StationState
    url: str | None = None
    step_no: int | None = None
    steps_total: int | None = None
    step_name: str | None = None
    plan: str | None = None
    run_id: str | None = None
    unit_serial: str | None = None
    verdict: str | None = None
    golden_interval_h: float | None = None

    @classmethod
    def of(
        cls, station: str, url: str | None, view: RunView | None, *, golden_interval_h: float | None = None
    ) -> StationStatus:
        if view is None:
            return cls(station, StationState.IDLE, url, golden_interval_h=golden_interval_h)
        step_no = view.current_step
        if view.running:
            state = StationState.WAITING if view.prompt is not None else StationState.RUNNING
        else:
            state = StationState.ERROR if view.verdict == "ERROR" else StationState.IDLE
        return cls(
            station,
            state,
            url,
            step_no=step_no,
            steps_total=len(view.steps) or None,
            step_name=view.steps[step_no - 1].name if step_no else None,
            plan=view.plan,
            run_id=view.run_id,
            unit_serial=view.unit_serial,
            verdict=view.verdict,
            golden_interval_h=golden_interval_h,
        )


def create_status_table(engine: Engine) -> None:
    """Create the table, or add the columns a table from an earlier version lacks (all nullable)."""
    with engine.begin() as conn:
        status_metadata.create_all(conn, checkfirst=True)
        present = {c["name"] for c in sa.inspect(conn).get_columns(station_status_table.name)}
        for column in station_status_table.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(sa.text(f"ALTER TABLE {station_status_table.name} ADD COLUMN {column.name} {kind}"))


def publish_status(engine: Engine, status: StationStatus) -> None:
    row = {
        "station": status.station,
        "url": status.url,
        "state": status.state.value,
        "step_no": status.step_no,
        "steps_total": status.steps_total,
        "step_name": status.step_name,
        "plan": status.plan,
        "run_id": status.run_id,
        "unit_serial": status.unit_serial,
        "verdict": status.verdict,
        "golden_interval_h": status.golden_interval_h,
        "updated_at": datetime.now(UTC),
    }
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(station_status_table)
    stmt = stmt.on_conflict_do_update(index_elements=["station"], set_={k: stmt.excluded[k] for k in row})
    with engine.begin() as conn:
        conn.execute(stmt, [row])


def read_statuses(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(station_status_table.name):
            return []
        rows = conn.execute(sa.select(station_status_table).order_by(station_status_table.c.station))
        return [dict(r._mapping) for r in rows]
