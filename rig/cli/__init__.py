"""The ``rig`` command.

Command groups live in the modules of this package: a module defines ``GROUP`` (``None`` for a top-level
command, or the name of a group such as ``"measure"`` or ``"twin"``) and ``register(subparsers)``, which adds
its sub-commands with ``set_defaults(func=...)``. A handler returns the exit status.

Exit status: 0 success/PASS, 1 FAIL, 2 bad input (one line on stderr, no traceback), 3 ERROR (the bench could
not measure), 130 interrupted. ``--debug`` shows the traceback of any error.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from rig import __version__
from rig.errors import DeviceError, InputError, MeasurementError, RigError

GROUPS = {
    "twin": "run the digital twin (capture, serve)",
    "measure": "measure an image or a set of images (pure measurements)",
    "station": "the operator station in the browser (serve)",
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rig", description="Leica M phone camera test and calibration bench")
    parser.add_argument("--version", action="version", version=f"rig {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    groups: dict[str | None, argparse._SubParsersAction] = {None: top}
    for name, help_text in GROUPS.items():
        group_parser = top.add_parser(name, help=help_text)
        groups[name] = group_parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", parser_class=_Parser)
        group_parser.set_defaults(func=lambda args, p=group_parser: _usage(p))
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(groups[getattr(module, "GROUP", None)])
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
