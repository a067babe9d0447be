"""rig: test, calibration and certification bench for a phone camera that takes Leica M lenses."""

from __future__ import annotations

from functools import cache


@cache
def _version() -> str:
    # importlib.metadata scans the installed distributions (≈ 30 ms): only when someone asks for the version
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rig")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+source"


def __getattr__(name: str) -> str:
    """``rig.__version__``, looked up on first use (PEP 562) so that ``import rig`` stays cheap."""
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'rig' has no attribute {name!r}")
