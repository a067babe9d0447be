"""The options of a plan run, declared once for the ``rig`` command and the pytest plugin.

``rig signoff --unit golden`` and ``pytest --pyargs rig.plans.signoff --unit golden`` must mean the same thing, so
each option is one :class:`RunOption` row here: the command line parser and pytest's option group are both built
from :data:`RUN_OPTIONS`, the plugin reads them back as one :class:`RunOptions`, and the CLI hands a
:class:`RunOptions` to pytest with :meth:`RunOptions.pytest_args`. Outputs go under the data home (:func:`data_home`:
``$RIG_HOME`` or the current directory), never beside the installed package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from rig.bench.pipeline import PipelineMode
from rig.config.home import default_calibration_dir, default_reports_dir
from rig.config.station import DEFAULT_STATION
from rig.errors import ArgumentError
from rig.spec.types import CaptureRetention


@dataclass(frozen=True)
class RunOption:
    """One option of a plan run, as both command lines spell it."""

    dest: str
    flag: str
    help: str
    metavar: str | None = None
    plans: frozenset[str] | None = None  # None: every plan
    convert: Callable[[str], Any] = str

    def applies_to(self, plan: str | None) -> bool:
        return self.plans is None or plan is None or plan in self.plans


RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption("station", "--station", "station file (default: the twin station)", "FILE", convert=Path),
    RunOption("unit", "--unit", "twin unit file or name in the shipped units (twin station only)", "NAME|FILE"),
    RunOption("unit_serial", "--unit-serial", "serial of the unit on the bench (required on a real station)", "S"),
    RunOption("lens", "--lens", "catalog id of the lens under test (default: the station's reference lens)", "ID"),
    RunOption("home", "--home", "data home for reports/ and calibration/ (default: $RIG_HOME or .)", "DIR", None, Path),
    RunOption("reports", "--reports", "folder for run folders (default: HOME/reports)", "DIR", convert=Path),
    RunOption("run_id", "--run-id", "id of the new run folder (default: time-serial-plan)", "RUN_ID"),
    RunOption("resume", "--resume", "continue RUN_ID from its first step not completed", "RUN_ID"),
    RunOption("operator", "--operator", "operator name for the record", "NAME"),
    RunOption(
        "keep_captures",
        "--keep-captures",
        "raw captures the run keeps: all, failed (those behind a FAIL/ERROR) or none (default: the station's)",
        "all|failed|none",
        convert=CaptureRetention,
    ),
    RunOption("store", "--store", "results store URL (default: SQLite in the reports folder)", "URL"),
    RunOption(
        "pipeline",
        "--pipeline",
        "on: measure each frame while the bench takes the next (default); off: one after the other (same numbers)",
        "on|off",
        convert=PipelineMode,
    ),
    RunOption(
        "calibration_dir",
        "--calibration-dir",
        "folder for calibration/<serial>/ profile files (default: HOME/calibration)",
        "DIR",
        frozenset({"calibration"}),
        Path,
    ),
)


class RunOptions(BaseModel):
    """Every option of one plan run, resolved (defaults filled in from the data home)."""

    model_config = ConfigDict(frozen=True)

    station: Path = DEFAULT_STATION
    unit: str | None = None
    unit_serial: str | None = None
    lens: str | None = None
    home: Path | None = None
    reports: Path | None = None
    run_id: str | None = None
    resume: str | None = None
    operator: str = ""
    store: str | None = None
    keep_captures: CaptureRetention | None = None
    pipeline: PipelineMode | None = None
    calibration_dir: Path | None = None

    @property
    def reports_dir(self) -> Path:
        return self.reports if self.reports is not None else default_reports_dir(self.home)

    @property
    def calibration_folder(self) -> Path:
        return self.calibration_dir if self.calibration_dir is not None else default_calibration_dir(self.home)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> RunOptions:
        """From a mapping of option dests (argparse namespace vars, pytest options); ``None``/"" mean default."""
        given: dict[str, Any] = {}
        for option in RUN_OPTIONS:
            value = values.get(option.dest)
            if value is None or value == "":
                continue
            try:
                given[option.dest] = option.convert(value) if isinstance(value, str) else value
            except ValueError:
                choices = getattr(option.convert, "__members__", None)
                expected = ", ".join(m.value for m in choices.values()) if choices else option.metavar
                raise ArgumentError(f"{option.flag} {value!r}: expected {expected}") from None
        return cls(**given)

    def pytest_args(self, plan: str) -> list[str]:
        """The plugin's command-line options for this run (only those that differ from the default)."""
        args: list[str] = []
        for option in RUN_OPTIONS:
            if not option.applies_to(plan):
                continue
            value = getattr(self, option.dest)
            if value is None or value == "":
                continue
            args += [option.flag, str(value)]
        return args


def add_argparse_options(parser: Any, plan: str) -> None:
    """Add the run options that apply to ``plan`` to an argparse parser (defaults stay None: resolved later)."""
    for option in RUN_OPTIONS:
        if option.applies_to(plan):
            parser.add_argument(option.flag, dest=option.dest, metavar=option.metavar, help=option.help, default=None)


def add_pytest_options(group: Any) -> None:
    """Add every run option to the plugin's pytest option group."""
    for option in RUN_OPTIONS:
        group.addoption(option.flag, dest=f"rig_{option.dest}", metavar=option.metavar, help=option.help, default=None)


def from_pytest(config: Any) -> RunOptions:
    """The run options a pytest session was started with."""
    return RunOptions.from_values({o.dest: config.getoption(f"rig_{o.dest}") for o in RUN_OPTIONS})
