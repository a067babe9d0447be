"""The line view's questions to the results store, written against the store's own SQLAlchemy tables.

The database does the aggregating (GROUP BY, window functions), so a page over 10⁴ runs moves tens of rows to
Python, not 10⁴: yield and first-pass yield in total, per hour and per shift with the definitions of
:func:`rig.results.spc.yield_summary`; each station's last verdict; the Pareto of failure causes, per measurement
name the runs in which it FAILed (as :func:`rig.results.spc.pareto`) plus bench ERRORs by step. Control charts
are :func:`rig.results.spc.control_charts` of one figure. :func:`ensure_line_indexes` adds the indexes these
queries filter and group by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rig.results.msa import MeasurementUncertainty
from rig.results.msa_store import StudyKind, station_uncertainty
from rig.results.spc import SPC_MEASUREMENT_COLUMNS, ControlChart, YieldSummary, control_charts
from rig.results.store import ResultsStore, measurements_table, msa_studies_table, runs_table, steps_table

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


@dataclass(frozen=True)
class YieldRow:
    period: str
    summary: YieldSummary


def _fraction(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


class Period(StrEnum):
    """How the line view groups runs for yield: all of them, per hour, per shift (UTC)."""

    TOTAL = "total"
    HOUR = "hour"
    SHIFT = "shift"


def _utc_hour_text(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[str]:
    """``YYYY-MM-DD HH:00`` of a UTC time, in the database (SQLite keeps ISO text with +00:00, PostgreSQL
    timestamptz: sqlite.org/lang_datefunc.html, postgresql.org/docs/current/functions-formatting.html)."""
    if dialect == "sqlite":
        return sa.func.strftime("%Y-%m-%d %H:00", column)
    return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD HH24:00")


def _utc_hour(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[int]:
    if dialect == "sqlite":
        return sa.cast(sa.func.strftime("%H", column), sa.Integer)
    return sa.cast(sa.extract("hour", sa.func.timezone("UTC", column)), sa.Integer)


def _shift_day(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[str]:
    """The date a shift ends on: the night shift (from 22:00) belongs to the next day."""
    ahead_h = 24 - SHIFTS[0][1]
    if dialect == "sqlite":
        return sa.func.strftime("%Y-%m-%d", column, f"+{ahead_h} hours")
    shifted = sa.func.timezone("UTC", column) + sa.text(f"interval '{ahead_h} hours'")
    return sa.func.to_char(shifted, "YYYY-MM-DD")


def _shift_name(hour: sa.ColumnElement[int]) -> sa.ColumnElement[str]:
    whens = []
    for name, start, end in SHIFTS:
        inside = sa.and_(hour >= start, hour < end) if start < end else sa.or_(hour >= start, hour < end)
        whens.append((inside, name))
    return sa.case(*whens)


def period_key(period: Period, column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[str]:
    """The text a run's start is grouped by: one constant, its UTC hour, or shift day + shift name."""
    if period is Period.TOTAL:
        return sa.literal("total")
    if period is Period.HOUR:
        return _utc_hour_text(column, dialect)
    return _shift_day(column, dialect) + " " + _shift_name(_utc_hour(column, dialect))


PERIOD_LENGTH = {Period.HOUR: timedelta(hours=1), Period.SHIFT: timedelta(hours=8)}


def period_start(period: Period, when: datetime) -> datetime:
    """The start of the hour or shift (UTC) that ``when`` falls in."""
    t = pd.Timestamp(when).tz_convert(UTC)
    if period is Period.HOUR:
        return t.floor("h").to_pydatetime()
    first = timedelta(hours=SHIFTS[1][1])  # shifts are 8 h from 06:00; floor() counts from the epoch's midnight
    return ((t - first).floor("8h") + first).to_pydatetime()


def yields(engine: Engine, filters: Filters, period: Period, newest: int | None = None) -> list[YieldRow]:
    """Yield and first-pass yield per period, newest first, aggregated by the database (one query).

    Definitions as :func:`rig.results.spc.yield_summary`: yield = PASS runs / finished runs; first pass is judged
    within the period, a unit's first run there (by start, then run id) — a window function, ROW_NUMBER()
    (SQLite ≥ 3.25, PostgreSQL), so no run travels to Python. ``newest``: only the ``newest`` hours (shifts) up to
    the one of the latest run, periods without runs not shown; the index on ``started`` keeps the scan to them.
    """
    r = runs_table
    where = [r.c.verdict.is_not(None), *filters.where()]
    if newest is not None and period is not Period.TOTAL:
        with engine.connect() as conn:
            latest = conn.execute(sa.select(sa.func.max(r.c.started)).where(*where)).scalar()
        if latest is None:
            return []
        where.append(r.c.started >= period_start(period, latest) - (newest - 1) * PERIOD_LENGTH[period])
    key = period_key(period, r.c.started, engine.dialect.name).label("period")
    done = sa.select(r.c.run_id, r.c.unit_serial, r.c.started, r.c.verdict, key).where(*where)
    done = done.cte("done")
    nth = sa.func.row_number().over(
        partition_by=(done.c.period, done.c.unit_serial), order_by=(done.c.started, done.c.run_id)
    )
    ranked = sa.select(done.c.period, done.c.verdict, done.c.started, nth.label("nth")).cte("ranked")
    passed = ranked.c.verdict == "PASS"
    first = ranked.c.nth == 1
    query = (
        sa.select(
            ranked.c.period,
            sa.func.count().label("runs"),
            sa.func.sum(sa.case((passed, 1), else_=0)).label("passed"),
            sa.func.sum(sa.case((first, 1), else_=0)).label("units"),
            sa.func.sum(sa.case((sa.and_(first, passed), 1), else_=0)).label("first_pass"),
        )
        .group_by(ranked.c.period)
        .order_by(sa.func.max(ranked.c.started).desc())  # chronological (a shift's name does not sort in time)
    )
    if newest is not None:
        query = query.limit(newest)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        YieldRow(
            str(row.period),
            YieldSummary(
                runs=int(row.runs),
                passed_runs=int(row.passed),
                yield_frac=_fraction(int(row.passed), int(row.runs)),
                units=int(row.units),
                first_pass_units=int(row.first_pass),
                first_pass_yield_frac=_fraction(int(row.first_pass), int(row.units)),
            ),
        )
        for row in rows
    ]


def last_verdicts(engine: Engine, filters: Filters) -> dict[str, str]:
    """Each station's verdict of its latest finished run (by start, then run id): one indexed look-up per
    station (``ix_line_runs_station_started``), not a pass over the runs."""
    r = runs_table
    stations = sa.select(r.c.station).where(*filters.where()).distinct().subquery()
    latest = (
        sa.select(r.c.verdict)
        .where(r.c.station == stations.c.station, r.c.verdict.is_not(None), *filters.where())
        .order_by(r.c.started.desc(), r.c.run_id.desc())
        .limit(1)
        .scalar_subquery()
    )
    with engine.connect() as conn:
        rows = conn.execute(sa.select(stations.c.station, latest.label("verdict")))
        return {str(station): str(verdict) for station, verdict in rows if verdict is not None}


def _in_chosen_runs(run_id: sa.ColumnElement[str], filters: Filters) -> list[sa.ColumnElement[bool]]:
    """``run_id IN (the filtered runs)``, or nothing when every run is chosen (no pointless semi-join)."""
    where = filters.where()
    return [run_id.in_(sa.select(runs_table.c.run_id).where(*where))] if where else []


LINE_INDEXES = {
    "ix_line_runs_station_started": ("runs", ("station", "started", "run_id")),
    "ix_line_runs_verdict_started": ("runs", ("verdict", "started")),
    "ix_line_runs_stored_at": ("runs", ("stored_at",)),
    "ix_line_runs_lens": ("runs", ("lens",)),
    "ix_line_msa_studies_stored_at": ("msa_studies", ("stored_at",)),
    "ix_line_measurements_verdict_name": ("measurements", ("verdict", "name", "run_id")),
    "ix_line_measurements_figure": ("measurements", ("name", "zone", "value")),
    "ix_line_steps_verdict_name": ("steps", ("verdict", "name", "run_id")),
}
"""Indexes of the store's tables that the line view's filters, groupings and Pareto read (name: table, columns).
The store defines the tables; the line view adds what its own questions need, idempotently."""


def ensure_line_indexes(engine: Engine) -> list[str]:
    """Create the :data:`LINE_INDEXES` that are missing (and refresh the planner's statistics when any was, so it
    uses them at once); returns the names created."""
    created = []
    with engine.begin() as conn:
        inspector = sa.inspect(conn)
        tables = set(inspector.get_table_names())
        for name, (table, columns) in LINE_INDEXES.items():
            if table in tables and name not in {ix["name"] for ix in inspector.get_indexes(table)}:
                conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(columns)})"))
                created.append(name)
        if created:
            conn.execute(sa.text("ANALYZE"))
    return created


def pareto_causes(engine: Engine, filters: Filters, limit: int = 15) -> list[dict[str, Any]]:
    """Failure causes, most frequent first: FAILed measurement names, then ERROR steps ("ERROR in <step>")."""
    m, s = measurements_table, steps_table
    fails = (
        sa.select(m.c.name.label("cause"), sa.func.count(sa.distinct(m.c.run_id)).label("runs"))
        .where(m.c.verdict == "FAIL", *_in_chosen_runs(m.c.run_id, filters))
        .group_by(m.c.name)
    )
    errors = (
        sa.select(("ERROR in " + s.c.name).label("cause"), sa.func.count(sa.distinct(s.c.run_id)).label("runs"))
        .where(s.c.verdict == "ERROR", *_in_chosen_runs(s.c.run_id, filters))
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
    query = (
        sa.select(m.c.name, m.c.zone).distinct().where(m.c.value.is_not(None), *_in_chosen_runs(m.c.run_id, filters))
    )
    with engine.connect() as conn:
        return sorted(((str(n), z) for n, z in conn.execute(query)), key=lambda p: (p[0], p[1] or ""))


def control_chart(engine: Engine, filters: Filters, name: str, zone: str | None) -> ControlChart | None:
    m = measurements_table
    query = (
        sa.select(*[m.c[c] for c in SPC_MEASUREMENT_COLUMNS])
        .where(m.c.name == name, (m.c.zone == zone) if zone else m.c.zone.is_(None))
        .where(*_in_chosen_runs(m.c.run_id, filters))
        .order_by(m.c.run_started, m.c.run_id, m.c.seq)
    )
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
    """Changes whenever a run is stored, a station's state changes or an MSA study is stored (the line view
    looks at it when notified or polled; every part is an indexed max or a count)."""
    from rig.web.status import station_status_table

    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.max(runs_table.c.stored_at), sa.func.count())).one()
        studies = conn.execute(sa.select(sa.func.max(msa_studies_table.c.stored_at))).scalar()
        try:
            states = conn.execute(sa.select(sa.func.max(station_status_table.c.updated_at))).scalar()
        except sa.exc.DBAPIError:
            states = None
    return (str(stored[0]), int(stored[1]), str(studies), str(states))


# --------------------------------------------------------------------------------------------- MSA on the line
def last_golden_checks(engine: Engine) -> dict[str, datetime]:
    """Each station's latest golden-unit check (``rig msa golden``: an MSA study of kind golden), by start."""
    t = msa_studies_table
    query = sa.select(t.c.station, sa.func.max(t.c.started)).where(t.c.kind == StudyKind.GOLDEN.value)
    with engine.connect() as conn:
        rows = conn.execute(query.group_by(t.c.station)).all()
    return {str(station): _as_utc(started) for station, started in rows if started is not None}


def golden_overdue(last_check: datetime | None, interval_h: float | None, now: datetime) -> bool:
    """True when a station with a golden interval has no golden-unit check, or none within the interval."""
    if interval_h is None:
        return False
    return last_check is None or now - last_check > timedelta(hours=interval_h)


def _as_utc(value: datetime | str) -> datetime:
    """A time read through ``func.max`` (SQLite hands back the stored text, not the column type's datetime)."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@dataclass(frozen=True)
class StationUncertainty:
    """A station's expanded uncertainty U of one figure, from its latest accepted gauge R&R (and type-1 bias)."""

    station: str
    figure: str
    uncertainty: MeasurementUncertainty
    study_started: datetime


def chart_stations(engine: Engine, filters: Filters, name: str, zone: str | None) -> list[str]:
    """The stations whose values make up the control chart of ``name`` [``zone``]."""
    m = measurements_table
    query = (
        sa.select(m.c.station)
        .distinct()
        .where(m.c.name == name, (m.c.zone == zone) if zone else m.c.zone.is_(None), m.c.value.is_not(None))
        .where(*_in_chosen_runs(m.c.run_id, filters))
    )
    with engine.connect() as conn:
        return sorted(str(s) for (s,) in conn.execute(query))


def msa_figure_names(name: str, zone: str | None) -> tuple[str, ...]:
    """The names an MSA study may give the figure: ``name[zone]`` for a zoned figure, then the bare name."""
    return (f"{name}[{zone}]", name) if zone else (name,)


def station_uncertainty_of(store: ResultsStore, station: str, name: str, zone: str | None) -> StationUncertainty | None:
    """U of one figure at one station from the MSA tables (read only; GUM combination of
    :func:`rig.results.msa_store.station_uncertainty`), or None when the station has no accepted gauge R&R of it."""
    rows = store.msa_figures(station=station)
    for figure in msa_figure_names(name, zone):
        mine = rows[rows["name"] == figure]
        if mine.empty:
            continue
        found = station_uncertainty(mine).get(figure)
        if found is None:
            continue
        grr = mine[(mine["kind"] == StudyKind.GRR.value) & mine["accepted"].astype(bool)]
        return StationUncertainty(station, figure, found, grr["started"].max().to_pydatetime())
    return None
