"""`rig measure …` imports only what a measurement uses, and every command is still reachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rig.cli import GROUPS, build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(argv: list[str]) -> set[str]:
    code = (
        "import sys; from rig.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return set(done.stderr.split())


def test_measure_imports_no_bench_twin_config_or_scipy(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    from tests.measure.analytic import gaussian_edge

    edge = tmp_path / "edge.png"
    cv2.imwrite(str(edge), np.round(gaussian_edge((80, 100), angle_deg=5.0, sigma_px=0.8, hi=40000.0)).astype("u2"))
    loaded = _modules_after(["measure", "sfr", str(edge), "--json"])
    assert "rig.measure.sfr" in loaded
    heavy = {m for m in loaded if m.startswith(("rig.twin", "rig.plans", "rig.config", "rig.devices", "scipy"))}
    assert not heavy, f"rig measure sfr imported {sorted(heavy)}"
    assert "importlib.metadata" not in loaded and "tifffile" not in loaded and "PIL" not in loaded


def test_module_names_follow_their_group() -> None:
    import importlib
    import pkgutil

    import rig.cli

    for info in pkgutil.iter_modules(rig.cli.__path__):
        group = getattr(importlib.import_module(f"rig.cli.{info.name}"), "GROUP", None)
        prefix = info.name.split("_", 1)[0] if "_" in info.name else None
        assert group == (prefix if prefix in GROUPS else None), f"rig/cli/{info.name}.py has GROUP {group!r}"


def test_every_command_is_still_registered() -> None:
    full = build_parser()
    top = next(a for a in full._actions if a.dest == "command")
    assert {"twin", "measure"} <= set(top.choices)
    measure = top.choices["measure"]._actions[-1].choices
    assert {"sfr", "chart", "focus", "uniformity", "shift"} <= set(measure)


def test_version_is_looked_up_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("rig ")


def test_text_output_of_a_noise_free_edge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2
    import numpy as np

    from tests.measure.analytic import gaussian_edge

    edge = tmp_path / "clean.png"  # no noise at all: SNR is infinite, JSON null, text "inf"
    image = gaussian_edge((80, 100), angle_deg=5.0, sigma_px=0.8, lo=8000.0, hi=40000.0)
    cv2.imwrite(str(edge), np.round(image).astype(np.uint16))
    flat = np.full((80, 100), 30000, np.uint16)
    flat[:, 50:] = 40000
    cv2.imwrite(str(tmp_path / "step.png"), flat)
    for path in (edge, tmp_path / "step.png"):
        code = main(["measure", "sfr", str(path), "--roi", "0", "0", "100", "80"])
        out = capsys.readouterr().out
        assert code == 0 and "MTF50" in out and "SNR inf" in out
    assert main(["measure", "sfr", str(tmp_path / "step.png"), "--roi", "0", "0", "100", "80", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["snr"] is None
