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
import importlib
import pkgutil
import sys
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
    parser = build_parser(argv, every_command=False)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        sys.stderr.write("rig: interrupted\n")
        return 130
    except InputError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"rig: error: {exc}\n")
        return EXIT_INPUT
    except (DeviceError, MeasurementError, RigError) as exc:
        if args.debug:
            raise
        sys.stderr.write(f"rig: bench error: {type(exc).__name__}: {exc}\n")
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
