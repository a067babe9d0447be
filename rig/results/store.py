"""The results store: every run of every station in one database, for SPC and traceability (DESIGN.md §6).

One small interface over two back ends (SQLAlchemy 2 Core):

* SQLite in WAL mode, the default, at ``reports/results.sqlite``: one file, no server, several processes may
  write at once (each write transaction takes the write lock up front with ``BEGIN IMMEDIATE``, so a writer
  waits for the lock instead of failing half-way with "database is locked"; readers never block in WAL).
* PostgreSQL for a factory line (``postgresql://user@host/db``, driven by psycopg 3).

Tables: ``runs`` (one row per run, with the full record as JSON for exact reconstruction), ``measurements``
(one row per measurement, run columns repeated for SPC without joins; columns as
:data:`rig.results.tables.MEASUREMENT_COLUMNS`) and ``steps``.

:meth:`ResultsStore.add_run` is idempotent: storing a run id again replaces that run's rows in one transaction
(a resumed run is stored again as it grows), so a run is never counted twice.

Usage::

    with open_store(None) as store:          # reports/results.sqlite
        store.add_run(record)
        frame = store.measurements(plan="signoff", since=datetime(2026, 1, 1, tzinfo=UTC))
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError as SAArgumentError
from sqlalchemy.exc import DatabaseError, OperationalError

from rig.config.home import default_store_path
from rig.config.limits import DecisionRule
from rig.errors import ArgumentError, DeviceError
from rig.results.record import RunRecord
from rig.results.tables import MEASUREMENT_COLUMNS, UNCERTAINTY_COLUMNS, measurement_rows, normalise_frame

log = logging.getLogger(__name__)

"""Default SQLite file: ``reports/results.sqlite`` of the checkout, beside the run folders (as rig.plugin)."""

SQLITE_BUSY_TIMEOUT_S = 60.0
# One key for "schema being created": concurrent first writers on PostgreSQL must not race CREATE TABLE.
_PG_SCHEMA_LOCK = 0x716_72E5
_READ_ONLY = "rig_read_only"
_BATCH_RUNS = 500  # runs per statement group in add_runs: keeps IN lists and parameter sets moderate


class StoreUnavailable(DeviceError):
    """The results database cannot be reached or written (server down, disk full, file locked too long)."""


metadata = sa.MetaData()

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC time in both stores.

    PostgreSQL keeps ``timestamptz``. SQLite has no time type and SQLAlchemy's DateTime writes naive text there, so
    it is stored as ISO 8601 text with an explicit offset (``2026-11-02 08:00:00.000000+00:00``), a form SQLite's own
    date functions read (sqlite.org/lang_datefunc.html, time values with a ``[+-]HH:MM`` suffix) and that sorts
    and compares as text in time order (every value is UTC, same width). Rows written naive by earlier versions
    are read as UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(32))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        value = _utc(value)
        return value.isoformat(sep=" ", timespec="microseconds") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return _utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


_TS = UtcDateTime()

runs_table = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("plan", sa.String(100), nullable=False, index=True),
    sa.Column("station", sa.String(200), nullable=False),
    sa.Column("unit_serial", sa.String(100), nullable=False, index=True),
    sa.Column("lens", sa.String(200)),
    # the limit set's revision the run was judged against (NULL: stored before limits had revisions)
    sa.Column("limits_revision", sa.String(40)),
    sa.Column("software_version", sa.String(100), nullable=False),
    sa.Column("git_sha", sa.String(64)),
    sa.Column("operator", sa.String(200), nullable=False),
    sa.Column("started", _TS, nullable=False, index=True),
    sa.Column("ended", _TS),
    sa.Column("verdict", sa.String(8)),
    # the run's word (certificate level, calibration verdict, else the verdict): RunRecord.headline
    sa.Column("headline", sa.String(40)),
    sa.Column("n_measurements", sa.Integer, nullable=False),
    sa.Column("stored_at", _TS, nullable=False),
    sa.Column("record_json", sa.Text, nullable=False),
)

measurements_table = sa.Table(
    "measurements",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("plan", sa.String(100), nullable=False),
    sa.Column("unit_serial", sa.String(100), nullable=False),
    sa.Column("station", sa.String(200), nullable=False),
    sa.Column("run_started", _TS, nullable=False, index=True),
    sa.Column("limits_revision", sa.String(40)),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("step", sa.String(200), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("zone", sa.String(100)),
    sa.Column("value", sa.Double),
    sa.Column("unit", sa.String(50), nullable=False),
    sa.Column("low", sa.Double),
    sa.Column("high", sa.Double),
    sa.Column("margin", sa.Double),
    sa.Column("verdict", sa.String(8), nullable=False),
    sa.Column("marginal", sa.Boolean, nullable=False, server_default=sa.false()),
    # the figure's expanded uncertainty U (issue #18), NULL without a study: rig.results.record.Uncertainty
    sa.Column("u_expanded", sa.Double),
    sa.Column("u_coverage_factor", sa.Double),
    sa.Column("u_study_id", sa.String(200)),
    sa.Column("u_study_started", _TS),
    sa.Column("u_bias_study_id", sa.String(200)),
    sa.Column("decision_rule", sa.String(20), nullable=False, server_default=DecisionRule.SIMPLE.value),
    sa.Column("decision", sa.String(20)),
    sa.Column("decision_note", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("doc", sa.Text, nullable=False),
    sa.Column("captures", sa.Text, nullable=False),
    sa.Column("timestamp", _TS, nullable=False),
    sa.Index("ix_measurements_name_zone", "name", "zone"),
)

steps_table = sa.Table(
    "steps",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("verdict", sa.String(8), nullable=False),
    sa.Column("started", _TS, nullable=False),
    sa.Column("ended", _TS, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("retries", sa.Integer, nullable=False),
    sa.Column("attachments", sa.Text, nullable=False),
)

msa_studies_table = sa.Table(
    "msa_studies",
    metadata,
    sa.Column("study_id", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("station", sa.String(200), nullable=False, index=True),
    sa.Column("plan", sa.String(100), nullable=False),
    sa.Column("started", _TS, nullable=False, index=True),
    sa.Column("accepted", sa.Boolean, nullable=False),
    sa.Column("stored_at", _TS, nullable=False),
    sa.Column("study_json", sa.Text, nullable=False),
)
"""One row per measurement system study (rig.results.msa_store: gauge R&R, type 1, golden-unit check)."""

msa_figures_table = sa.Table(
    "msa_figures",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column(
        "study_id",
        sa.String(200),
        sa.ForeignKey("msa_studies.study_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("station", sa.String(200), nullable=False),
    sa.Column("started", _TS, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("accepted", sa.Boolean, nullable=False),
    sa.Column("value", sa.Double),
    sa.Column("repeatability_sd", sa.Double),
    sa.Column("reproducibility_sd", sa.Double),
    sa.Column("part_sd", sa.Double),
    sa.Column("pct_grr", sa.Double),
    sa.Column("pct_tolerance", sa.Double),
    sa.Column("ndc", sa.Double),
    sa.Column("bias", sa.Double),
    sa.Column("cg", sa.Double),
    sa.Column("cgk", sa.Double),
    sa.Column("expanded_u", sa.Double),
    sa.Index("ix_msa_figures_station_name", "station", "name"),
)
"""One row per figure of an MSA study; columns as :data:`rig.results.msa_store.MSA_FIGURE_COLUMNS`."""


RUN_COLUMNS: tuple[str, ...] = tuple(c.name for c in runs_table.columns if c.name != "record_json")
MSA_STUDY_COLUMNS: tuple[str, ...] = tuple(c.name for c in msa_studies_table.columns if c.name != "study_json")
MSA_FIGURE_COLUMNS: tuple[str, ...] = tuple(c.name for c in msa_figures_table.columns if c.name != "id")


def normalise_url(url: str | Path | None) -> str:
    """A SQLAlchemy URL from what a user types: ``None`` (default file), a path, ``sqlite:///…`` or
    ``postgresql://…`` (``postgres://`` accepted); PostgreSQL always goes through psycopg 3."""
    if url is None:
        return f"sqlite:///{default_store_path()}"
    text = str(url).strip()
    if isinstance(url, Path) or "://" not in text:
        return f"sqlite:///{Path(text)}"
    scheme, rest = text.split("://", 1)
    if scheme in {"postgres", "postgresql", "postgresql+psycopg"}:
        return f"postgresql+psycopg://{rest}"
    if scheme == "sqlite":
        return text
    raise ArgumentError(f"--store {text!r}: expected sqlite:///PATH, a file path or postgresql://USER@HOST/DB")


def _utc(ts: datetime) -> datetime:
    # Naive datetimes are taken as UTC: the record writes UTC, and SQLite keeps no offset.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _run_row(record: RunRecord, stored_at: datetime) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "plan": record.plan,
        "station": record.station,
        "unit_serial": record.unit_serial,
        "lens": record.lens,
        "limits_revision": record.limits_revision,
        "software_version": record.software_version,
        "git_sha": record.git_sha,
        "operator": record.operator,
        "started": _utc(record.started),
        "ended": _utc(record.ended) if record.ended else None,
        "verdict": record.verdict.value if record.verdict else None,
        "headline": record.headline,
        "n_measurements": len(record.measurements),
        "stored_at": stored_at,
        "record_json": record.model_dump_json(),
    }


def _step_rows(record: RunRecord) -> list[dict[str, Any]]:
    return [
        {
            "run_id": record.run_id,
            "seq": i,
            "name": s.name,
            "verdict": s.verdict.value,
            "started": _utc(s.started),
            "ended": _utc(s.ended),
            "error": s.error,
            "retries": s.retries,
            "attachments": json.dumps(s.attachments),
        }
        for i, s in enumerate(record.steps)
    ]


def _install_sqlite_hooks(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite (it would BEGIN lazily, as DEFERRED) so "begin" below decides.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable against a process crash in WAL; the record.json on disk can re-store a run lost
        # to a power cut.
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock at BEGIN (IMMEDIATE): a deferred transaction that reads then writes can hit
        # SQLITE_BUSY_SNAPSHOT, which busy_timeout does not retry. Readers stay DEFERRED so WAL never blocks them.
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


_ADDED_COLUMNS: tuple[tuple[sa.Table, str], ...] = (
    (runs_table, "headline"),
    (measurements_table, "marginal"),
    (runs_table, "limits_revision"),
    (measurements_table, "limits_revision"),
    *((measurements_table, c) for c in UNCERTAINTY_COLUMNS),
)
"""Columns added after the first schema (issues #13, #18): a store created before them gains them on open, keeping
every row (``ALTER TABLE … ADD COLUMN`` with the type and default of the table definition above; old rows read the
default: no headline, not marginal, no revision, no U, the simple rule)."""

_PLAIN_CELLS: dict[str, Any] = {"marginal": False, "decision_rule": DecisionRule.SIMPLE.value}
"""What an added measurement column holds for a plain figure (the column default; None where not listed)."""


def _add_missing_columns(conn: Connection) -> set[tuple[str, str]]:
    """Add the :data:`_ADDED_COLUMNS` a store lacks; returns the ``(table, column)`` pairs it added."""
    inspector = sa.inspect(conn)
    added: set[tuple[str, str]] = set()
    for table, column in _ADDED_COLUMNS:
        if column not in {c["name"] for c in inspector.get_columns(table.name)}:
            ddl = sa.schema.CreateColumn(table.c[column]).compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")
            added.add((table.name, column))
    return added


def _backfill_measurements(conn: Connection, columns: set[str]) -> None:
    """Fill measurement ``columns`` just added to an existing store from each run's stored record.

    The record (``runs.record_json``) already held the revision, U and decision of runs stored before the
    measurements table had columns for them; only rows whose new cells differ from the column default are
    updated, so a store of plain runs costs one read of its records.
    """
    t = measurements_table
    update = (
        sa.update(t)
        .where(t.c.run_id == sa.bindparam("key_run_id"), t.c.seq == sa.bindparam("key_seq"))
        .values({c: sa.bindparam(f"new_{c}", type_=t.c[c].type) for c in columns})
    )
    for (text,) in conn.execute(sa.select(runs_table.c.record_json)):
        record = RunRecord.model_validate_json(text)
        changes = [
            {"key_run_id": row["run_id"], "key_seq": row["seq"], **{f"new_{c}": row[c] for c in columns}}
            for row in measurement_rows(record)
            if any(row[c] != _PLAIN_CELLS.get(c) for c in columns)
        ]
        if changes:
            conn.execute(update, changes)


class ResultsStore:
    """Runs, measurements and steps in SQLite or PostgreSQL. Build with :func:`open_store`; close when done."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self, *, read_only: bool = False) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                if read_only:
                    conn = conn.execution_options(**{_READ_ONLY: True})
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise StoreUnavailable(f"results store {self.engine.url.render_as_string()}: {exc.orig}") from exc

    def create_schema(self) -> None:
        with self._tx() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
            metadata.create_all(conn, checkfirst=True)
            added = _add_missing_columns(conn)
            new_measurement_columns = {c for table, c in added if table == measurements_table.name}
            if new_measurement_columns:
                _backfill_measurements(conn, new_measurement_columns)

    # ------------------------------------------------------------------ writing
    def add_run(self, record: RunRecord) -> None:
        """Store (or replace) one run: its row, its measurements and steps, in one transaction."""
        self.add_runs([record])

    def add_runs(self, records: Iterable[RunRecord]) -> int:
        """Store (or replace) several runs in one transaction (an import, a re-store of a reports folder).

        A run id given twice keeps its last record. Returns the number of runs written.
        """
        latest = {r.run_id: r for r in records}
        # Sorted ids: two writers upserting overlapping sets lock rows in the same order and cannot deadlock.
        ordered = [latest[k] for k in sorted(latest)]
        with self._tx() as conn:
            for start in range(0, len(ordered), _BATCH_RUNS):
                self._write(conn, ordered[start : start + _BATCH_RUNS])
        return len(ordered)

    def _write(self, conn: Connection, records: list[RunRecord]) -> None:
        now = datetime.now(UTC)
        run_rows, meas, steps = [], [], []
        for record in records:
            run_rows.append(_run_row(record, now))
            meas += measurement_rows(record)
            steps += _step_rows(record)
        for row in meas:
            row["run_started"] = _utc(row["run_started"])
            row["timestamp"] = _utc(row["timestamp"])
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(runs_table)
        # Upsert first: on PostgreSQL the row lock it takes serialises two writers of the same run id, so the
        # child delete below sees the other writer's committed rows and nothing is duplicated.
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id"], set_={k: stmt.excluded[k] for k in run_rows[0] if k != "run_id"}
        )
        ids = [r["run_id"] for r in run_rows]
        conn.execute(stmt, run_rows)
        conn.execute(sa.delete(measurements_table).where(measurements_table.c.run_id.in_(ids)))
        conn.execute(sa.delete(steps_table).where(steps_table.c.run_id.in_(ids)))
        if meas:
            conn.execute(measurements_table.insert(), meas)
        if steps:
            conn.execute(steps_table.insert(), steps)

    def delete_run(self, run_id: str) -> bool:
        with self._tx() as conn:
            conn.execute(sa.delete(measurements_table).where(measurements_table.c.run_id == run_id))
            conn.execute(sa.delete(steps_table).where(steps_table.c.run_id == run_id))
            return conn.execute(sa.delete(runs_table).where(runs_table.c.run_id == run_id)).rowcount > 0

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _filters(
        table: sa.Table,
        started_col: str,
        *,
        since: datetime | None,
        until: datetime | None,
        plan: str | None,
        unit_serial: str | None,
        station: str | None,
    ) -> list[sa.ColumnElement[bool]]:
        out: list[sa.ColumnElement[bool]] = []
        if since is not None:
            out.append(table.c[started_col] >= _utc(since))
        if until is not None:
            out.append(table.c[started_col] < _utc(until))
        for col, value in (("plan", plan), ("unit_serial", unit_serial), ("station", station)):
            if value is not None:
                out.append(table.c[col] == value)
        return out

    def runs(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        plan: str | None = None,
        unit_serial: str | None = None,
        station: str | None = None,
    ) -> pd.DataFrame:
        """One row per stored run (columns :data:`RUN_COLUMNS`), oldest first; ``since`` ≤ started < ``until``."""
        cols = [runs_table.c[c] for c in RUN_COLUMNS]
        where = self._filters(
            runs_table, "started", since=since, until=until, plan=plan, unit_serial=unit_serial, station=station
        )
        query = sa.select(*cols).where(*where).order_by(runs_table.c.started, runs_table.c.run_id)
        with self._tx(read_only=True) as conn:
            rows = [tuple(r) for r in conn.execute(query)]
        frame = pd.DataFrame.from_records(rows, columns=list(RUN_COLUMNS))
        for col in ("started", "ended", "stored_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
        return frame

    def measurements(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        plan: str | None = None,
        unit_serial: str | None = None,
        station: str | None = None,
        name: str | None = None,
        columns: Sequence[str] = MEASUREMENT_COLUMNS,
    ) -> pd.DataFrame:
        """One row per measurement, in run start then record order.

        ``columns`` (default all of :data:`MEASUREMENT_COLUMNS`) narrows the query, e.g. to what SPC needs.
        """
        t = measurements_table
        unknown = [c for c in columns if c not in MEASUREMENT_COLUMNS]
        if unknown:
            raise ArgumentError(f"columns {unknown}: expected names from {', '.join(MEASUREMENT_COLUMNS)}")
        where = self._filters(
            t, "run_started", since=since, until=until, plan=plan, unit_serial=unit_serial, station=station
        )
        if name is not None:
            where.append(t.c.name == name)
        order = (t.c.run_started, t.c.run_id, t.c.seq)
        query = sa.select(*[t.c[c] for c in columns]).where(*where).order_by(*order)
        with self._tx(read_only=True) as conn:
            # Plain tuples: pandas probes each Row for namedtuple fields, which costs seconds on 10⁵ rows.
            rows = [tuple(r) for r in conn.execute(query)]
        return normalise_frame(pd.DataFrame.from_records(rows, columns=list(columns)))

    def steps(self, run_id: str) -> pd.DataFrame:
        t = steps_table
        cols = ["run_id", "seq", "name", "verdict", "started", "ended", "error", "retries", "attachments"]
        with self._tx(read_only=True) as conn:
            rows = conn.execute(sa.select(*[t.c[c] for c in cols]).where(t.c.run_id == run_id).order_by(t.c.seq)).all()
        return pd.DataFrame(rows, columns=cols)

    def get_run(self, run_id: str) -> RunRecord | None:
        """The stored record exactly as it was added, or ``None``."""
        with self._tx(read_only=True) as conn:
            text = conn.execute(sa.select(runs_table.c.record_json).where(runs_table.c.run_id == run_id)).scalar()
        return None if text is None else RunRecord.model_validate_json(text)

    # ------------------------------------------------------------------ measurement system analysis
    def add_msa_study(self, study: dict[str, Any], figures: Sequence[dict[str, Any]]) -> None:
        """Store (or replace) one MSA study row (:data:`MSA_STUDY_COLUMNS` + ``study_json``) and its figure rows
        (:data:`MSA_FIGURE_COLUMNS` without ``study_id``, ``kind``, ``station``, ``started``), one transaction."""
        row = {**study, "started": _utc(study["started"]), "stored_at": datetime.now(UTC)}
        common = {k: row[k] for k in ("study_id", "kind", "station", "started")}
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(msa_studies_table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["study_id"], set_={k: stmt.excluded[k] for k in row if k != "study_id"}
        )
        with self._tx() as conn:
            conn.execute(stmt, [row])
            conn.execute(sa.delete(msa_figures_table).where(msa_figures_table.c.study_id == row["study_id"]))
            if figures:
                conn.execute(msa_figures_table.insert(), [{**f, **common} for f in figures])

    def msa_figures(
        self, *, station: str | None = None, kind: str | None = None, name: str | None = None
    ) -> pd.DataFrame:
        """MSA figure rows (:data:`MSA_FIGURE_COLUMNS`), oldest study first."""
        t = msa_figures_table
        where = [t.c[col] == value for col, value in (("station", station), ("kind", kind), ("name", name)) if value]
        query = sa.select(*[t.c[c] for c in MSA_FIGURE_COLUMNS]).where(*where).order_by(t.c.started, t.c.id)
        with self._tx(read_only=True) as conn:
            rows = [tuple(r) for r in conn.execute(query)]
        frame = pd.DataFrame.from_records(rows, columns=list(MSA_FIGURE_COLUMNS))
        frame["started"] = pd.to_datetime(frame["started"], utc=True, format="ISO8601")
        return frame

    def msa_study_json(self, study_id: str) -> str | None:
        """The study exactly as it was stored (JSON), or ``None``."""
        with self._tx(read_only=True) as conn:
            return conn.execute(
                sa.select(msa_studies_table.c.study_json).where(msa_studies_table.c.study_id == study_id)
            ).scalar()

    def count(self) -> dict[str, int]:
        """Row counts per table (for checks and status lines)."""
        with self._tx(read_only=True) as conn:
            return {
                t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
                for t in (runs_table, measurements_table, steps_table)
            }


SQLITE_HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite 3 database file (https://www.sqlite.org/fileformat.html §1.3)."""


def _sqlite_file(sa_url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (None for in-memory and ``file:`` URIs, and for other databases)."""
    if not sa_url.startswith("sqlite:///"):
        return None
    path = sa_url.removeprefix("sqlite:///")
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path)


def _check_sqlite_file(path: Path, url: str | Path | None, *, create: bool) -> None:
    """An existing SQLite file, or (``create``) a new one in an existing folder; else one ArgumentError line."""
    shown = f"--store {url}" if url is not None else f"results store {path}"
    if path.is_dir():
        raise ArgumentError(f"{shown}: is a folder, expected an SQLite database file")
    if path.exists():
        try:
            with path.open("rb") as fh:
                head = fh.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise ArgumentError(f"{shown}: cannot be read ({exc.strerror or exc})") from None
        if head and head != SQLITE_HEADER:  # an empty file is a valid new database to SQLite
            raise ArgumentError(f"{shown}: not an SQLite database (starts with {head[:8]!r})")
        return
    if not create:
        raise ArgumentError(f"{shown}: no such results store (check the path)")
    if url is not None and not path.parent.is_dir():
        raise ArgumentError(f"{shown}: the folder {path.parent} does not exist")


def check_store_url(url: str | Path) -> None:
    """Refuse, before a run, a results store URL that cannot be opened (see :func:`open_store`)."""
    path = _sqlite_file(normalise_url(url))
    if path is not None:
        _check_sqlite_file(path, url, create=True)


def open_store(url: str | Path | None = None, *, create: bool = True) -> ResultsStore:
    """Open the results store at ``url`` (see :func:`normalise_url`) and create its tables if missing.

    Raises
    ------
    rig.errors.ArgumentError
        The URL is not SQLite or PostgreSQL; the SQLite file is not a database, or is missing while ``create``
        is false, or its folder does not exist (only the default store's folder is created).
    StoreUnavailable
        The database cannot be reached or its schema cannot be created.
    """
    sa_url = normalise_url(url)
    path = _sqlite_file(sa_url)
    if path is not None:
        _check_sqlite_file(path, url, create=create)
        if url is None:  # only the default store's folder is made; a typed folder must exist (a typo stays one)
            path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if sa_url.startswith("sqlite"):
            engine = sa.create_engine(sa_url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
            _install_sqlite_hooks(engine)
        else:
            engine = sa.create_engine(sa_url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    except (SAArgumentError, ValueError) as exc:
        raise ArgumentError(f"--store {url!s}: {exc}") from None
    store = ResultsStore(engine)
    if create:
        try:
            store.create_schema()
        except DatabaseError as exc:  # not an operational fault (those are StoreUnavailable): a corrupt file
            store.close()
            raise ArgumentError(f"--store {url!s}: not a usable results store ({exc.orig})") from None
        except BaseException:
            store.close()
            raise
    return store
