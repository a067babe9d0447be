"""rig: test, calibration and certification bench for a phone camera that takes Leica M lenses."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rig")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
