"""The line view's questions to the results store, written against the store's own SQLAlchemy tables.

Yield and first-pass yield use the definitions of :mod:`rig.results.spc` (:func:`~rig.results.spc.yield_summary`)
per hour and per shift; the Pareto of failure causes counts, per measurement name, the runs in which it FAILed
(as :func:`rig.results.spc.pareto`, but grouped in the database so 10⁴ runs stay fast) and adds bench ERRORs by
step; control charts are :func:`rig.results.spc.control_charts` of one figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rig.results.spc import SPC_MEASUREMENT_COLUMNS, ControlChart, YieldSummary, control_charts, yield_summary
from rig.results.store import measurements_table, runs_table, steps_table

SHIFTS = (("night", 22, 6), ("early", 6, 14), ("late", 14, 22))
"""Three 8-hour shifts by the hour (UTC) they start; a run belongs to the shift its start falls in."""
RUN_FIELDS = ("run_id", "plan", "station", "unit_serial", "lens", "operator", "started", "ended", "verdict")


@dataclass(frozen=True)
class Filters:
    plan: str | None = None
    lens: str | None = None
    station: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self, table: sa.Table = runs_table) -> list[sa.ColumnElement[bool]]:
        out: list[sa.ColumnElement[bool]] = []
        for column in ("plan", "lens", "station"):
            value = getattr(self, column)
            if value:
                out.append(table.c[column] == value)
        if self.since is not None:
            out.append(table.c.started >= self.since)
        if self.until is not None:
            out.append(table.c.started < self.until)
        return out

    def query_string(self) -> str:
        from urllib.parse import urlencode

        pairs = {k: v for k, v in self.__dict__.items() if v}
        return urlencode({k: v.isoformat() if isinstance(v, datetime) else v for k, v in pairs.items()})


def runs_frame(engine: Engine, filters: Filters) -> pd.DataFrame:
    query = sa.select(*[runs_table.c[c] for c in RUN_FIELDS]).where(*filters.where())
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(query.order_by(runs_table.c.started, runs_table.c.run_id))]
    frame = pd.DataFrame.from_records(rows, columns=list(RUN_FIELDS))
    for column in ("started", "ended"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def shift_of(hour: int) -> str:
    for name, start, end in SHIFTS:
        if (start <= hour < end) if start < end else (hour >= start or hour < end):
            return name
    raise ValueError(hour)


@dataclass(frozen=True)
class YieldRow:
    period: str
    summary: YieldSummary


def yields_by(runs: pd.DataFrame, period: str, newest: int) -> list[YieldRow]:
    """Yield and first-pass yield of the ``newest`` periods, per ``"hour"`` or per ``"shift"`` (shift = the date
    it ends on + its name), newest first. First pass is judged within the period: a unit's first run there."""
    if runs.empty:
        return []
    started = runs["started"]
    if period == "hour":
        keys = started.dt.floor("h").dt.strftime("%Y-%m-%d %H:00")
    else:
        shifted = started - pd.Timedelta(hours=SHIFTS[0][1] - 24)  # the night shift belongs to the day it ends
        keys = shifted.dt.strftime("%Y-%m-%d") + " " + started.dt.hour.map(shift_of)
    chosen = set(sorted(keys.unique(), reverse=True)[:newest])
    recent = runs[keys.isin(chosen)]
    groups = recent.groupby(keys[keys.isin(chosen)])
    return [YieldRow(str(key), yield_summary(group)) for key, group in sorted(groups, reverse=True, key=lambda g: g[0])]


def pareto_causes(engine: Engine, filters: Filters, limit: int = 15) -> list[dict[str, Any]]:
    """Failure causes, most frequent first: FAILed measurement names, then ERROR steps ("ERROR in <step>")."""
    chosen = sa.select(runs_table.c.run_id).where(*filters.where())
    m, s = measurements_table, steps_table
    fails = (
        sa.select(m.c.name.label("cause"), sa.func.count(sa.distinct(m.c.run_id)).label("runs"))
        .where(m.c.verdict == "FAIL", m.c.run_id.in_(chosen))
        .group_by(m.c.name)
    )
    errors = (
        sa.select(("ERROR in " + s.c.name).label("cause"), sa.func.count(sa.distinct(s.c.run_id)).label("runs"))
        .where(s.c.verdict == "ERROR", s.c.run_id.in_(chosen))
        .group_by(s.c.name)
    )
    with engine.connect() as conn:
        rows = [(str(c), int(n)) for c, n in conn.execute(fails)] + [(str(c), int(n)) for c, n in conn.execute(errors)]
    rows.sort(key=lambda r: (-r[1], r[0]))
    total = sum(n for _, n in rows)
    out, cumulative = [], 0
    for cause, n in rows[:limit]:
        cumulative += n
        out.append({"cause": cause, "runs": n, "share": n / total, "cumulative": cumulative / total})
    return out


def figures(engine: Engine, filters: Filters) -> list[tuple[str, str | None]]:
    """The (name, zone) pairs measured in the chosen runs, for the control chart links."""
    m = measurements_table
    query = sa.select(m.c.name, m.c.zone).distinct().where(m.c.value.is_not(None))
    if filters.where():
        query = query.where(m.c.run_id.in_(sa.select(runs_table.c.run_id).where(*filters.where())))
    with engine.connect() as conn:
        return sorted(((str(n), z) for n, z in conn.execute(query)), key=lambda p: (p[0], p[1] or ""))


def control_chart(engine: Engine, filters: Filters, name: str, zone: str | None) -> ControlChart | None:
    m = measurements_table
    query = (
        sa.select(*[m.c[c] for c in SPC_MEASUREMENT_COLUMNS])
        .where(m.c.name == name, (m.c.zone == zone) if zone else m.c.zone.is_(None))
        .order_by(m.c.run_started, m.c.run_id, m.c.seq)
    )
    if filters.where():
        query = query.where(m.c.run_id.in_(sa.select(runs_table.c.run_id).where(*filters.where())))
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(query)]
    charts = control_charts(pd.DataFrame.from_records(rows, columns=list(SPC_MEASUREMENT_COLUMNS)))
    return charts[0] if charts else None


def unit_history(engine: Engine, serial: str) -> list[dict[str, Any]]:
    """Every run of one unit, across stations and plans, newest first, with its FAILed figures."""
    query = sa.select(*[runs_table.c[c] for c in RUN_FIELDS]).where(runs_table.c.unit_serial == serial)
    m = measurements_table
    fails = sa.select(m.c.run_id, m.c.name).where(m.c.unit_serial == serial, m.c.verdict == "FAIL").distinct()
    with engine.connect() as conn:
        runs = [dict(r._mapping) for r in conn.execute(query.order_by(runs_table.c.started.desc()))]
        failed: dict[str, list[str]] = {}
        for run_id, name in conn.execute(fails):
            failed.setdefault(run_id, []).append(name)
    for run in runs:
        run["failures"] = sorted(failed.get(run["run_id"], []))
    return runs


def recent_runs(engine: Engine, filters: Filters, limit: int = 25) -> list[dict[str, Any]]:
    query = sa.select(*[runs_table.c[c] for c in RUN_FIELDS]).where(*filters.where())
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query.order_by(runs_table.c.started.desc()).limit(limit))]


def choices(engine: Engine) -> dict[str, list[str]]:
    """The values the filters offer: plans, lenses and stations seen in the store."""
    out = {}
    with engine.connect() as conn:
        for column in ("plan", "lens", "station"):
            col = runs_table.c[column]
            out[column] = sorted(str(v) for (v,) in conn.execute(sa.select(col).distinct()) if v)
    return out


def change_marker(engine: Engine) -> tuple[Any, ...]:
    """Changes whenever a run is stored or a station's state changes (the line view's bounded poll)."""
    from rig.web.status import station_status_table

    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.max(runs_table.c.stored_at), sa.func.count())).one()
        try:
            states = conn.execute(sa.select(sa.func.max(station_status_table.c.updated_at))).scalar()
        except sa.exc.DBAPIError:
            states = None
    return (str(stored[0]), int(stored[1]), str(states))
