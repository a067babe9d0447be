"""The bench-as-data loaders: the shipped fixtures validate, and every bad file gets one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.config import load_chart, load_lens_catalog, load_station, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.errors import ConfigError


def test_shipped_catalog_has_the_lenses_the_bench_certifies() -> None:
    catalog = load_lens_catalog()
    assert len(catalog.lens) >= 6
    for lens_id in ("summilux-m-35-f1.4-asph-2022", "noctilux-m-50-f0.95-asph", "apo-summicron-m-90-f2-asph"):
        assert catalog.get(lens_id).focal_length_mm > 0
    # T-stop is N/√T: slower than the f-number for any real transmission
    spec = catalog.get("summilux-m-35-f1.4-asph-2022")
    assert spec.t_stop == pytest.approx(1.4 / spec.transmission**0.5)
    assert catalog.native.f_number == 1.9


def test_every_shipped_station_and_unit_validates() -> None:
    for path in sorted((FIXTURES_DIR / "stations").glob("*.toml")):
        assert load_station(path).name
    for path in sorted((FIXTURES_DIR / "units").glob("*.toml")):
        assert load_unit(path).serial


def test_sfr_chart_has_25_edges_over_the_field() -> None:
    chart = load_chart("sfr")
    assert chart.edge_count >= 25
    radii = sorted({round((s.x**2 + s.y**2) ** 0.5, 1) for s in chart.squares})
    assert radii == [0.0, 0.3, 0.5, 0.7, 0.9]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(text)
    return path


def test_wrong_value_names_file_field_value_and_expectation(tmp_path: Path) -> None:
    text = (FIXTURES_DIR / "stations" / "twin.toml").read_text()
    bad = _write(tmp_path, text.replace("collimator_focal_length_mm = 200.0", "collimator_focal_length_mm = -5"))
    with pytest.raises(ConfigError) as info:
        load_station(bad)
    message = str(info.value)
    assert "\n" not in message
    assert str(bad) in message and "optics.collimator_focal_length_mm" in message and "-5" in message
    assert "greater than 0" in message


def test_missing_and_unknown_fields_are_named(tmp_path: Path) -> None:
    text = (FIXTURES_DIR / "stations" / "twin.toml").read_text()
    with pytest.raises(ConfigError, match=r"optics\.collimator_focal_length_mm = \(missing\)"):
        load_station(_write(tmp_path, text.replace("collimator_focal_length_mm = 200.0", "")))
    with pytest.raises(ConfigError, match=r"rail\.speed = 3: expected no such field"):
        load_station(_write(tmp_path, text.replace("[rail]", "[rail]\nspeed = 3")))


def test_unparsable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="valid TOML"):
        load_station(_write(tmp_path, "name = = 3"))
    with pytest.raises(ConfigError, match="expected an existing TOML file"):
        load_station(tmp_path / "nope.toml")


def test_unknown_lens_lists_the_catalog() -> None:
    with pytest.raises(ConfigError, match="summilux-m-35"):
        load_lens_catalog().get("summilux-m-36", source="u.toml", field="lens.id")
