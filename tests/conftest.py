"""Suite-wide test ordering.

The plan tests run whole sign-offs (30–120 s each). xdist hands tests out in collection order, so slow tests
collected last leave one worker busy while the other idles at the end; starting them first packs the two cores
(CI has two) and keeps the wall time near total work / 2. That needs ``--dist worksteal`` (the README's command):
xdist's default ``load`` hands a quarter of the suite out round-robin up front and never takes a test back, and
one worker once ran 189 tests (slow ones among them) for 36 min while the other finished its 1363 after 13 min.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: 0 if item.get_closest_marker("slow") else 1)
