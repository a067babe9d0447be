"""The ``rig`` command.

Command groups live in the modules of this package: a module defines ``GROUP`` (``None`` for a top-level
command, or the name of a group such as ``"measure"`` or ``"twin"``) and ``register(subparsers)``, which adds
its sub-commands with ``set_defaults(func=...)``. A handler returns the exit status. A group's modules are named
``<group>_<topic>.py``, so that ``rig measure …`` imports only the ``measure_*`` modules (a bench or twin module
costs a few hundred ms of imports that a measurement never uses); ``rig --help`` imports them all.

Exit status: 0 success/PASS, 1 FAIL, 2 bad input (one line on stderr, no traceback), 3 ERROR (the bench could
not measure), 130 interrupted. ``--debug`` shows the traceback of any error.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pkgutil
import sys
import warnings
from collections.abc import Sequence

from rig.errors import DeviceError, InputError, MeasurementError, RigError

GROUPS = {
    "twin": "run the digital twin (capture, serve)",
    "measure": "measure an image or a set of images (pure measurements)",
    "station": "the station: its controller's settings (configure), its operator screen (serve)",
    "msa": "measurement system analysis: gauge R&R, type-1 study",
    "line": "the line view over the results store (serve, demo)",
}

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_INPUT = 2
EXIT_ERROR = 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line and exit status 2 (its own convention too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_INPUT)


class _Version(argparse.Action):
    """``--version``: the installed version, looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        import rig

        sys.stdout.write(f"rig {rig.__version__}\n")
        parser.exit()


def _modules_for(argv: Sequence[str] | None) -> list[str]:
    """The command modules the command line needs: a group's own, the top-level ones, or all for help."""
    names = sorted(info.name for info in pkgutil.iter_modules(__path__))
    words = [w for w in (sys.argv[1:] if argv is None else argv) if not w.startswith("-")]
    if not words:
        return names
    if words[0] in GROUPS:
        return [n for n in names if n.startswith(f"{words[0]}_")]
    return [n for n in names if not any(n.startswith(f"{g}_") for g in GROUPS)]


def build_parser(argv: Sequence[str] | None = None, *, every_command: bool = True) -> argparse.ArgumentParser:
    """The ``rig`` parser; with ``every_command=False`` only the modules ``argv`` needs are imported."""
    parser = _Parser(prog="rig", description="Leica M phone camera test and calibration bench")
    parser.add_argument("--version", action=_Version)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    groups: dict[str | None, argparse._SubParsersAction] = {None: top}
    for name, help_text in GROUPS.items():
        group_parser = top.add_parser(name, help=help_text)
        groups[name] = group_parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", parser_class=_Parser)
        group_parser.set_defaults(func=lambda args, p=group_parser: _usage(p))
    names = sorted(info.name for info in pkgutil.iter_modules(__path__)) if every_command else _modules_for(argv)
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(groups[getattr(module, "GROUP", None)])
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # everything as it comes: library warnings, tracebacks
    with contextlib.nullcontext() if debug else _LibraryNoise() as noise:
        code, line = _dispatch(argv, debug=debug)
    if line is not None:
        sys.stderr.write(f"{line}{noise.suffix() if noise else ''}\n")
    elif noise:
        noise.report()
    return code


def _dispatch(argv: list[str], *, debug: bool) -> tuple[int, str | None]:
    """Run the command: its exit status, and for a failure the one line for stderr (raised as is with ``debug``).

    argparse's own exits (``--help``, ``--version``, a malformed argument: one line, exit 2) pass through.
    """
    parser = build_parser(argv, every_command=False)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_INPUT, None
    try:
        return int(args.func(args) or 0), None
    except KeyboardInterrupt:
        return 130, "rig: interrupted"
    except Exception as exc:
        if debug:
            raise
        return _classify(exc)


def _classify(exc: Exception) -> tuple[int, str]:
    """The exit status and the one stderr line for an error that reached the command line.

    User-caused failures (:class:`InputError`, a file the user named that cannot be opened or written, a malformed
    document, an input too large for memory) are exit 2; bench faults are exit 3 ("bench error"); anything else
    is a defect of rig itself, still one line (exit 3, "internal error", ``--debug`` shows the traceback).
    """
    from pydantic import ValidationError

    from rig.errors import FileInputError, one_line

    if isinstance(exc, InputError):
        return EXIT_INPUT, one_line(f"rig: error: {exc}")
    if isinstance(exc, OSError) and exc.filename is not None:
        problem = exc.strerror or type(exc).__name__
        return EXIT_INPUT, one_line(f"rig: error: {FileInputError(exc.filename, problem)}")
    if isinstance(exc, ValidationError):
        from rig.spec.model import config_error_from_validation

        return EXIT_INPUT, one_line(f"rig: error: {config_error_from_validation(exc.title, exc)}")
    if isinstance(exc, MemoryError):
        return EXIT_INPUT, "rig: error: an input needs more memory than this machine has (MemoryError)"
    if isinstance(exc, DeviceError | MeasurementError | RigError):
        return EXIT_ERROR, one_line(f"rig: bench error: {type(exc).__name__}: {exc}")
    return EXIT_ERROR, one_line(f"rig: internal error: {type(exc).__name__}: {exc} (--debug shows the traceback)")


class _LibraryNoise:
    """Captures what libraries print while a command runs (Python warnings, tifffile's and other libraries'
    log records, OpenCV's native log) and summarises it in one line, so rig's own line is never buried.

    rig's own log records of WARNING and above are still printed, one line each.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._warnings = warnings.catch_warnings(record=True)
        self._handler = _CountingHandler(self)
        self._caught: list[warnings.WarningMessage] = []

    def __enter__(self) -> _LibraryNoise:
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # read when cv2 loads; set again below if it has
        cv2 = sys.modules.get("cv2")
        if cv2 is not None:
            with contextlib.suppress(AttributeError):
                cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        caught = self._warnings.__enter__()
        self._caught = caught if caught is not None else []
        warnings.simplefilter("always")
        logging.getLogger().addHandler(self._handler)
        return self

    def __exit__(self, *_exc: object) -> None:
        logging.getLogger().removeHandler(self._handler)
        self._warnings.__exit__(None, None, None)
        for caught in self._caught:
            self.count(caught.category.__name__)

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def __bool__(self) -> bool:
        return True

    def summary(self) -> str:
        """``N library warning(s) hidden (kind ×n, …)``, or "" when nothing was caught."""
        if not self.counts:
            return ""
        total = sum(self.counts.values())
        kinds = ", ".join(f"{name} ×{n}" for name, n in sorted(self.counts.items(), key=lambda kv: -kv[1])[:4])
        return f"{total} library warning(s) hidden ({kinds})"

    def suffix(self) -> str:
        """The summary for the end of an error line (the error contract is one line, so it joins it)."""
        return f" [{self.summary()}]" if self.counts else ""

    def report(self) -> None:
        if self.counts:
            sys.stderr.write(f"rig: note: {self.summary()}; --debug shows them\n")


class _CountingHandler(logging.Handler):
    def __init__(self, noise: _LibraryNoise) -> None:
        super().__init__(level=logging.WARNING)
        self.noise = noise

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "rig" or record.name.startswith("rig."):
            with contextlib.suppress(Exception):
                sys.stderr.write(f"rig: {record.levelname.lower()}: {record.getMessage()}\n")
            return
        self.noise.count(record.name.split(".")[0])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
