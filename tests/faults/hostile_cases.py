"""The hostile-input cases (issue #20) as data: each is a command line, the files it needs and what its one
stderr line must name. Every case must end with exit 2 before any device opens. ``README.md`` beside this file is
the checklist of every case of the issue and the tests (these cases among them) that cover it.

Placeholders in arguments and file texts: ``{tmp}`` (the case's folder), ``{station}`` (the case's station file,
the shipped twin station with the case's edits). ``station`` edits are (dotted key, TOML value text), or
(dotted key, None) to delete the key.
"""

from __future__ import annotations

import io
import tomllib
from dataclasses import dataclass, field

import numpy as np
import tifffile

from rig.config.loader import FIXTURES_DIR
from rig.spec.dng import write_dng

TWIN_STATION = FIXTURES_DIR / "stations" / "twin.toml"
GOLDEN = FIXTURES_DIR / "units" / "golden.toml"
LENSES = FIXTURES_DIR / "lenses.toml"


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    needles: tuple[str, ...]
    station: tuple[tuple[str, str | None], ...] = ()
    files: dict[str, bytes | str] = field(default_factory=dict)
    limits: dict[str, str] | None = None  # plan -> limits file text (replaces the shipped one)
    exit_code: int = 2


def _signoff(*extra: str) -> tuple[str, ...]:
    return ("signoff", "--station", "{station}", "--reports", "{tmp}/reports", *extra)


# --------------------------------------------------------------------------------------------- station fields
def _numeric_fields() -> list[str]:
    data = tomllib.loads(TWIN_STATION.read_text())
    out: list[str] = []

    def walk(prefix: str, node: dict) -> None:
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                walk(path, value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                out.append(path)

    walk("", data)
    return out


HOSTILE_NUMBERS = {"nan": "nan", "inf": "inf", "neg-inf": "-inf", "text": '"many"', "array": "[1, 2]"}

STATION_FIELD_CASES = [
    Case(f"station-{path}-{kind}", _signoff(), ("{station}", path.split(".")[-1]), station=((path, value),))
    for path in _numeric_fields()
    for kind, value in HOSTILE_NUMBERS.items()
]

STATION_MISSING_CASES = [
    Case(f"station-missing-{path}", _signoff(), ("{station}", path, "(missing)"), station=((path, None),))
    for path in (
        "name",
        "reference_lens",
        "reference_f_number",
        "optics.collimator_focal_length_mm",
        "rail.min_mm",
        "rail.focus_mm",
        "carousel.max_mm",
        "light.luminance_cd_m2_at_max",
        "stage.port",
        "phone.port",
        "twin.unit",
        "fixture.max_rate_deg_min",
    )
]

STATION_SEMANTIC_CASES = [
    Case(
        "reference-lens-not-in-catalogue",
        _signoff(),
        ("reference_lens", "no-such-lens"),
        station=(("reference_lens", '"no-such-lens"'),),
    ),
    Case(
        "reference-f-below-max-aperture",
        _signoff(),
        ("reference_f_number", "0.7"),
        station=(("reference_f_number", "0.7"),),
    ),
    Case(
        "reference-f-beyond-the-ring",
        _signoff(),
        ("reference_f_number", "64"),
        station=(("reference_f_number", "64.0"),),
    ),
    Case("sensor-12-px-wide", _signoff(), ("sensor", "12"), station=(("sensor.full_width_px", "12"),)),
    Case("sensor-4e6-px-wide", _signoff(), ("sensor", "full_width_px"), station=(("sensor.full_width_px", "4000000"),)),
    Case(
        "sensor-over-the-pixel-budget",
        _signoff(),
        ("max_frame_megapixels",),
        station=(("sensor.max_frame_megapixels", "10.0"),),
    ),
    Case("sensor-odd-sides", _signoff(), ("sensor", "divisible"), station=(("sensor.full_width_px", "8190"),)),
    Case("black-above-white", _signoff(), ("sensor", "black_level_dn"), station=(("sensor.black_level_dn", "2000"),)),
    Case(
        "white-above-bit-depth", _signoff(), ("sensor", "white_level_dn"), station=(("sensor.white_level_dn", "4095"),)
    ),
    Case("binning-3", _signoff(), ("sensor.binning",), station=(("sensor.binning", "3"),)),
    Case(
        "no-sfr-slot",
        _signoff(),
        ("carousel.slots.sfr", "(missing)"),
        station=(("carousel.slots", "{ flat = 100.0, dotgrid = 200.0 }"),),
    ),
    Case(
        "no-dotgrid-slot",
        _signoff(),
        ("carousel.slots.dotgrid",),
        station=(("carousel.slots", "{ flat = 100.0, sfr = 0.0 }"),),
    ),
    Case(
        "nan-slot",
        _signoff(),
        ("carousel.slots",),
        station=(("carousel.slots", "{ sfr = nan, flat = 100.0, dotgrid = 200.0 }"),),
    ),
    Case(
        "slot-beyond-the-carousel",
        _signoff(),
        ("carousel.slots.dotgrid",),
        station=(("carousel.slots", "{ sfr = 0.0, flat = 100.0, dotgrid = 900.0 }"),),
    ),
    Case("empty-slots", _signoff(), ("carousel.slots",), station=(("carousel.slots", "{}"),)),
    Case("timeout-1e300", _signoff(), ("stage.timeout_s",), station=(("stage.timeout_s", "1e300"),)),
    Case("move-timeout-inf", _signoff(), ("move_timeout_s",), station=(("stage.move_timeout_s", "inf"),)),
    Case("phone-timeout-1e6", _signoff(), ("phone.timeout_s",), station=(("phone.timeout_s", "1e6"),)),
    Case("twin-seed-negative", _signoff(), ("twin.seed", "-1"), station=(("twin.seed", "-1"),)),
    Case("twin-seed-2-64", _signoff(), ("twin.seed",), station=(("twin.seed", "18446744073709551616"),)),
    Case("serial-pattern-invalid", _signoff(), ("serial_pattern",), station=(("serial_pattern", '"(["'),)),
    Case(
        "serial-pattern-backtracking",
        _signoff("--unit-serial", "X" * 40 + "Y"),
        ("--unit-serial",),
        station=(("serial_pattern", '"^(X+)+$"'),),
    ),
    Case(
        "serial-pattern-permissive-traversal",
        _signoff("--unit-serial", "../../escaped"),
        ("escaped",),
        station=(("serial_pattern", '".+"'),),
    ),
    Case(
        "serial-pattern-permissive-slash",
        _signoff("--unit-serial", "a/b"),
        ("'a/b'",),
        station=(("serial_pattern", '".+"'),),
    ),
    Case(
        "serial-pattern-permissive-dot",
        _signoff("--unit-serial", ".hidden"),
        (".hidden",),
        station=(("serial_pattern", '".+"'),),
    ),
    Case(
        "serial-pattern-4000-chars",
        _signoff(),
        ("--unit-serial", "XM12SU-000001", "…"),
        station=(("serial_pattern", '"^(' + "A|" * 2000 + 'B)$"'),),
    ),
    Case(
        "station-name-5000-chars",
        _signoff("--unit-serial", "nope"),
        ("--unit-serial", "'nope'", "…"),
        station=(("name", '"' + "n" * 5000 + '"'),),
    ),
    Case(
        "lenses-file-missing", _signoff(), ("{tmp}/none.toml", "(missing)"), station=(("lenses", '"{tmp}/none.toml"'),)
    ),
    Case("twin-unit-missing", _signoff(), ("nope.toml",), station=(("twin.unit", '"{tmp}/nope.toml"'),)),
    Case("stage-port-empty", _signoff(), ("stage.port",), station=(("stage.port", '""'),)),
    Case("phone-port-bogus", _signoff(), ("phone.port",), station=(("phone.port", '"serial:/dev/x"'),)),
    Case("unknown-station-field", _signoff(), ("colour", "no such field"), station=(("colour", '"red"'),)),
    Case("rail-focus-outside", _signoff(), ("rail", "focus_mm"), station=(("rail.focus_mm", "500.0"),)),
]

# --------------------------------------------------------------------------------------------- whole files
BAD_TOML_FILES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "(missing)"),
    "not-toml": (b"this is = = not toml\n", "valid TOML"),
    "binary": (b"\x00\x01\x02\xff\xfe", "UTF-8"),
    "latin-1": ('name = "Müller"\n'.encode("latin-1"), "UTF-8"),
    "deep-array": (b"a = " + b"[" * 50000 + b"]" * 50000 + b"\n", "nested too deep"),
    "deep-inline-table": (b"a = " + b"{b = " * 3000 + b"1" + b"}" * 3000 + b"\n", "nested too deep"),
    "json": (b'{"name": "twin"}', "valid TOML"),
    "bom-and-garbage": (b"\xef\xbb\xbf[[[", "valid TOML"),
}

FILE_CASES: list[Case] = []
for kind, (content, needle) in BAD_TOML_FILES.items():
    FILE_CASES.append(
        Case(
            f"station-file-{kind}",
            ("signoff", "--station", "{tmp}/bad.toml", "--reports", "{tmp}/reports"),
            ("{tmp}/bad.toml", needle),
            files={"bad.toml": content},
        )
    )
    FILE_CASES.append(
        Case(
            f"lens-catalogue-{kind}",
            _signoff(),
            ("{tmp}/bad.toml", needle),
            files={"bad.toml": content},
            station=(("lenses", '"{tmp}/bad.toml"'),),
        )
    )
    FILE_CASES.append(
        Case(
            f"unit-file-{kind}",
            _signoff("--unit", "{tmp}/bad.toml"),
            ("{tmp}/bad.toml", needle),
            files={"bad.toml": content},
        )
    )
    FILE_CASES.append(
        Case(
            f"twin-capture-station-{kind}",
            ("twin", "capture", "--unit", "golden", "--station", "{tmp}/bad.toml", "--out", "{tmp}/x.dng"),
            ("{tmp}/bad.toml", needle),
            files={"bad.toml": content},
        )
    )
FILE_CASES += [
    Case("station-is-a-folder", ("signoff", "--station", "{tmp}", "--reports", "{tmp}/reports"), ("{tmp}",)),
    Case("station-missing", ("signoff", "--station", "{tmp}/none.toml"), ("{tmp}/none.toml", "(missing)")),
    Case("station-in-a-missing-folder", ("signoff", "--station", "{tmp}/a/b/c.toml"), ("{tmp}/a/b/c.toml",)),
    Case(
        "station-through-a-file",
        ("signoff", "--station", "{tmp}/f.toml/x.toml"),
        ("{tmp}/f.toml/x.toml",),
        files={"f.toml": "x = 1\n"},
    ),
    Case("station-dev-null", ("signoff", "--station", "/dev/null", "--reports", "{tmp}/reports"), ("/dev/null",)),
]

EIO = "/proc/self/mem"
"""A real file that answers every read at offset 0 with EIO (Linux proc(5): address 0 is never mapped), the
"station path that returns EIO" of issue #20 without a failing disk."""
EIO_CASES = [
    Case("station-file-eio", ("signoff", "--station", EIO, "--reports", "{tmp}/reports"), (EIO, "Input/output")),
    Case("lens-catalogue-eio", _signoff(), (EIO, "Input/output"), station=(("lenses", f'"{EIO}"'),)),
    Case("unit-file-eio", _signoff("--unit", EIO), (EIO, "Input/output")),
    Case("twin-unit-eio", _signoff(), (EIO, "Input/output"), station=(("twin.unit", f'"{EIO}"'),)),
    Case("measure-uniformity-eio", ("measure", "uniformity", EIO), (EIO, "Input/output")),
    Case("measure-shift-eio", ("measure", "shift", EIO, EIO), (EIO, "Input/output")),
    Case("measure-sfr-eio", ("measure", "sfr", EIO), (EIO, "Input/output")),
    Case("measure-focus-manifest-eio", ("measure", "focus", "--manifest", EIO), (EIO, "Input/output")),
    Case("spc-store-eio", ("spc", "--store", EIO, "--out", "{tmp}/spc"), (EIO, "Input/output")),
]

# --------------------------------------------------------------------------------------------- units and lenses
UNIT_CASES = [
    Case(
        "unit-lens-not-in-catalogue",
        _signoff("--unit", "{tmp}/u.toml"),
        ("{tmp}/u.toml", "lens.id", "nope"),
        files={"u.toml": 'serial = "XM12SU-000009"\n[lens]\nid = "nope"\n'},
    ),
    Case(
        "unit-f-below-max-aperture",
        _signoff("--unit", "{tmp}/u.toml"),
        ("lens.f_number", "0.9"),
        files={"u.toml": 'serial = "XM12SU-000009"\n[lens]\nid = "summilux-m-35-f1.4-asph-2022"\nf_number = 0.9\n'},
    ),
    Case(
        "unit-f-beyond-the-ring",
        _signoff("--unit", "{tmp}/u.toml"),
        ("lens.f_number",),
        files={"u.toml": 'serial = "XM12SU-000009"\n[lens]\nid = "summilux-m-35-f1.4-asph-2022"\nf_number = 45.0\n'},
    ),
    Case(
        "unit-serial-off-pattern",
        _signoff("--unit", "{tmp}/u.toml"),
        ("lowercase-1",),
        files={"u.toml": 'serial = "lowercase-1"\n[lens]\nid = "summilux-m-35-f1.4-asph-2022"\n'},
    ),
    Case("unit-unknown-name", _signoff("--unit", "no-such-unit"), ("no-such-unit",)),
    Case(
        "unit-mount-text",
        _signoff("--unit", "{tmp}/u.toml"),
        ("mount.flange_offset_um",),
        files={
            "u.toml": 'serial = "XM12SU-000009"\n[mount]\nflange_offset_um = "x"\n'
            '[lens]\nid = "summilux-m-35-f1.4-asph-2022"\n'
        },
    ),
    Case(
        "unit-fault-unknown-kind",
        _signoff("--unit", "{tmp}/u.toml"),
        ("faults",),
        files={
            "u.toml": 'serial = "XM12SU-000009"\n[lens]\nid = "summilux-m-35-f1.4-asph-2022"\n'
            '[[faults.inject]]\nkind = "meteor"\nafter_captures = 1\n'
        },
    ),
    Case("lens-option-unknown", _signoff("--lens", "elmarit-9000"), ("--lens", "elmarit-9000")),
    Case("lens-option-traversal", _signoff("--lens", "../lenses"), ("--lens",)),
]

# --------------------------------------------------------------------------------------------- limits
_SIGNOFF_LIMITS = (FIXTURES_DIR / "limits" / "signoff.toml").read_text()
LIMIT_CASES = [
    Case("limits-empty", _signoff(), ("signoff.toml", "(missing)"), limits={"signoff": ""}),
    Case(
        "limits-renamed",
        _signoff(),
        ("signoff.toml", "mtf50_cy_px"),
        limits={"signoff": _SIGNOFF_LIMITS.replace("[mtf50_cy_px]", "[mtf50_iso_cy_px]")},
    ),
    Case(
        "limits-wrong-unit",
        _signoff(),
        ("signoff.toml", "unit"),
        limits={"signoff": _SIGNOFF_LIMITS.replace('unit = "um"', 'unit = "mm"', 1)},
    ),
    Case(
        "limits-low-above-high",
        _signoff(),
        ("signoff.toml",),
        limits={"signoff": '[x_um]\nunit = "um"\nlow = 5\nhigh = 1\n'},
    ),
    Case("limits-not-toml", _signoff(), ("signoff.toml", "valid TOML"), limits={"signoff": "[[["}),
    Case(
        "limits-deep",
        _signoff(),
        ("signoff.toml", "nested too deep"),
        limits={"signoff": "a = " + "[" * 40000 + "]" * 40000},
    ),
    Case(
        "limits-text-low",
        _signoff(),
        ("signoff.toml",),
        limits={"signoff": _SIGNOFF_LIMITS + '\n[extra_um]\nunit = "um"\nlow = "small"\n'},
    ),
]

# --------------------------------------------------------------------------------------------- options, folders
OPTION_CASES = [
    Case("resume-empty", _signoff("--resume", ""), ("--resume", "''")),
    Case("station-empty", ("signoff", "--station", "", "--reports", "{tmp}/reports"), ("--station", "''")),
    Case("lens-empty", _signoff("--lens", ""), ("--lens",)),
    Case("reports-empty", ("signoff", "--station", "{station}", "--reports", ""), ("--reports",)),
    Case("store-empty", _signoff("--store", " "), ("--store",)),
    Case("unit-empty", _signoff("--unit", ""), ("--unit",)),
    Case("resume-blank", _signoff("--resume", "   "), ("--resume",)),
    Case("resume-missing", _signoff("--resume", "20260101T000000-XM12SU-000001-signoff"), ("--resume", "no run")),
    Case("resume-traversal", _signoff("--resume", "../outside"), ("--resume", "../outside")),
    Case("resume-absolute", _signoff("--resume", "/etc"), ("--resume", "/etc")),
    Case("resume-dot", _signoff("--resume", "."), ("--resume",)),
    Case("run-id-empty", _signoff("--run-id", ""), ("--run-id",)),
    Case("run-id-slash", _signoff("--run-id", "a/b"), ("--run-id", "a/b")),
    Case("run-id-dotdot", _signoff("--run-id", ".."), ("--run-id",)),
    Case(
        "run-id-taken", _signoff("--run-id", "taken"), ("--run-id", "taken", "exists"), files={"reports/taken/x": "x"}
    ),
    Case("unit-serial-empty", _signoff("--unit-serial", ""), ("--unit-serial",)),
    Case("option-serial-off-pattern", _signoff("--unit-serial", "XM12SU-1"), ("XM12SU-1",)),
    Case("unit-serial-huge", _signoff("--unit-serial", "X" * 5000), ("--unit-serial",)),
    Case("unit-serial-newline", _signoff("--unit-serial", "XM12SU-000001\nrm"), ("--unit-serial",)),
    Case(
        "reports-is-a-file",
        ("signoff", "--station", "{station}", "--reports", "{tmp}/f"),
        ("{tmp}/f", "--reports"),
        files={"f": "x"},
    ),
    Case(
        "reports-under-a-file",
        ("signoff", "--station", "{station}", "--reports", "{tmp}/f/r"),
        ("{tmp}/f/r",),
        files={"f": "x"},
    ),
    Case(
        "reports-in-proc",
        ("signoff", "--station", "{station}", "--reports", "/proc/rig-reports"),
        ("/proc/rig-reports",),
    ),
    Case("home-is-a-file", ("signoff", "--station", "{station}", "--home", "{tmp}/f"), ("{tmp}/f",), files={"f": "x"}),
    Case(
        "store-not-sqlite",
        _signoff("--store", "{tmp}/s.sqlite"),
        ("{tmp}/s.sqlite", "not an SQLite"),
        files={"s.sqlite": "hello, not a database"},
    ),
    Case("store-missing-folder", _signoff("--store", "{tmp}/nope/s.sqlite"), ("{tmp}/nope",)),
    Case("store-is-a-folder", _signoff("--store", "{tmp}"), ("--store", "folder")),
    Case("store-bad-scheme", _signoff("--store", "ftp://host/x"), ("--store", "ftp://host/x")),
    Case(
        "calibration-dir-is-a-file",
        ("calibrate", "--station", "{station}", "--reports", "{tmp}/reports", "--calibration-dir", "{tmp}/f"),
        ("--calibration-dir", "{tmp}/f"),
        files={"f": "x"},
    ),
    Case(
        "unit-on-a-real-station",
        (
            "signoff",
            "--station",
            "{tmp}/real.toml",
            "--unit",
            "golden",
            "--unit-serial",
            "XM12SU-000001",
            "--reports",
            "{tmp}/reports",
        ),
        ("--unit",),
        files={"real.toml": (FIXTURES_DIR / "stations" / "example-line.toml").read_text()},
    ),
    Case(
        "real-station-without-serial",
        ("signoff", "--station", "{tmp}/real.toml", "--reports", "{tmp}/reports"),
        ("--unit-serial", "required"),
        files={"real.toml": (FIXTURES_DIR / "stations" / "example-line.toml").read_text()},
    ),
]

# --------------------------------------------------------------------------------------------- run records
BAD_RECORDS: dict[str, bytes] = {
    "empty": b"",
    "truncated": b'{"run_id": "r", "plan": "sig',
    "array": b"[]",
    "wrong-types": b'{"run_id": 1, "plan": 2}',
    "binary": b"\x00\xff\x10\x80",
    "not-json": b"run_id = 'r'",
    "deep": b"[" * 20000 + b"]" * 20000,
    "nan": b'{"run_id": NaN}',
    "foreign-json": b'{"hello": "world"}',
    "utf16": '{"run_id": "r"}'.encode("utf-16"),
}
RECORD_CASES: list[Case] = []
for kind, content in BAD_RECORDS.items():
    RECORD_CASES.append(
        Case(
            f"report-record-{kind}",
            ("report", "{tmp}/run", "--no-pdf"),
            ("{tmp}/run/record.json",),
            files={"run/record.json": content},
        )
    )
    RECORD_CASES.append(
        Case(
            f"resume-record-{kind}",
            _signoff("--resume", "run"),
            ("record.json",),
            files={"reports/run/record.json": content},
        )
    )


# --------------------------------------------------------------------------------------------- twin capture / serve
def _capture(*extra: str) -> tuple[str, ...]:
    return ("twin", "capture", "--unit", "golden", "--out", "{tmp}/x.dng", *extra)


CAPTURE_CASES = [
    Case(f"capture-{flag.strip('-')}-{value}", _capture(flag, value), (flag,))
    for flag, values in {
        "--iso": ("1e9", "0.5", "nan", "-100", "100.5", "inf", "abc"),
        "--exposure-ms": ("1e300", "0", "-1", "nan", "inf", "1e6"),
        "--seed": ("-1", "4294967296", "1.5"),
        "--light": ("2", "-0.1", "nan"),
        "--rail-mm": ("1e9", "nan", "-inf"),
        "--pitch-deg": ("200", "nan"),
    }.items()
    for value in values
] + [
    Case("capture-chart-unknown", _capture("--chart", "moon"), ("--chart", "moon")),
    Case("capture-unit-unknown", ("twin", "capture", "--unit", "nobody", "--out", "{tmp}/x.dng"), ("nobody",)),
    Case(
        "capture-out-in-missing-folder",
        ("twin", "capture", "--unit", "golden", "--out", "{tmp}/no/x.dng"),
        ("--out", "{tmp}/no/x.dng"),
    ),
    Case("capture-out-is-a-folder", ("twin", "capture", "--unit", "golden", "--out", "{tmp}"), ("--out",)),
]

SERVE_CASES = [
    Case("serve-port-negative", ("twin", "serve", "--ptp-port", "-1"), ("--ptp-port",)),
    Case("serve-port-70000", ("twin", "serve", "--ptp-port", "70000"), ("--ptp-port",)),
    Case(
        "serve-port-twice", ("twin", "serve", "--ptp-port", "15740", "--ptp-event-port", "15740"), ("--ptp-event-port",)
    ),
    Case("serve-port-text", ("twin", "serve", "--ptp-port", "http"), ("--ptp-port",)),
    Case("serve-station-missing", ("twin", "serve", "--station", "{tmp}/none.toml"), ("{tmp}/none.toml",)),
]


# --------------------------------------------------------------------------------------------- measure commands
def _tiff(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    tifffile.imwrite(out, image)
    return out.getvalue()


def _dark_dng() -> bytes:
    """A Bayer DNG at its black level: no light at all (issue #20: "a dark DNG")."""
    return write_dng(
        np.full((96, 128), 64, np.uint16), black_level=64, white_level=1023, make="Leica", model="M-Phone",
        unique_camera_model="Leica M-Phone", serial=None, timestamp_ms=None, exposure_time_s=0.01, iso=100,
        f_number=None, focal_length_mm=None, lens_model=None,
    )  # fmt: skip


_FLAT = _tiff(np.full((128, 128), 30000, np.uint16))
_IMAGES: dict[str, bytes] = {
    "flat.tif": _FLAT,
    "zero.tif": _tiff(np.zeros((128, 128), np.uint16)),
    "noise.tif": _tiff(np.random.default_rng(20).integers(0, 65535, (128, 128)).astype(np.uint16)),
    "one.tif": _tiff(np.full((1, 1), 100, np.uint16)),
    "small.tif": _tiff(np.full((64, 80), 30000, np.uint16)),
    "dark.dng": _dark_dng(),
    "text.png": b"not an image at all\n",
    "cut.tif": _FLAT[: len(_FLAT) // 2],
}


def _measure(*argv: str) -> tuple[str, ...]:
    """``rig measure`` with every file name placed in the case's folder."""
    return ("measure", *(f"{{tmp}}/{a}" if a.endswith((".tif", ".png", ".dng")) else a for a in argv))


def _image_case(case_id: str, argv: tuple[str, ...], *needles: str) -> Case:
    names = [a for a in argv if a in _IMAGES]
    return Case(
        case_id,
        _measure(*argv),
        tuple(f"{{tmp}}/{n}" if n in _IMAGES else n for n in needles),
        files={n: _IMAGES[n] for n in names},
    )


MEASURE_CASES = [
    _image_case("measure-uniformity-zero", ("uniformity", "zero.tif"), "zero.tif", "too dark"),
    _image_case("measure-uniformity-noise", ("uniformity", "noise.tif"), "noise.tif", "not a flat field"),
    _image_case("measure-uniformity-1x1", ("uniformity", "one.tif"), "one.tif", "(1, 1)"),
    _image_case("measure-uniformity-dark-dng", ("uniformity", "dark.dng"), "dark.dng", "too dark"),
    _image_case("measure-uniformity-grid-100001", ("uniformity", "flat.tif", "--grid", "100001"), "flat.tif", "100001"),
    _image_case("measure-uniformity-grid-even", ("uniformity", "flat.tif", "--grid", "4"), "--grid 4"),
    _image_case("measure-uniformity-not-an-image", ("uniformity", "text.png"), "text.png"),
    _image_case("measure-uniformity-truncated-tiff", ("uniformity", "cut.tif"), "cut.tif"),
    _image_case("measure-uniformity-missing", ("uniformity", "none.tif"), "none.tif"),
    *(
        _image_case(
            f"measure-uniformity-pitch-{value}{'-json' if as_json else ''}",
            ("uniformity", "flat.tif", f"--pixel-pitch-um={value}", *as_json),  # "=": argparse reads -inf as a flag
            f"--pixel-pitch-um {value}",
        )
        for value in ("nan", "inf", "-inf", "0", "-1.6")
        for as_json in ((), ("--json",))
    ),
    _image_case("measure-shift-flat", ("shift", "flat.tif", "flat.tif"), "flat.tif", "texture"),
    _image_case("measure-shift-zero", ("shift", "zero.tif", "zero.tif"), "zero.tif", "texture"),
    _image_case("measure-shift-1x1", ("shift", "one.tif", "one.tif"), "one.tif", "1×1"),
    _image_case("measure-shift-sizes", ("shift", "flat.tif", "small.tif", "--json"), "flat.tif", "small.tif", "size"),
    _image_case("measure-shift-dark-dng", ("shift", "dark.dng", "dark.dng"), "dark.dng"),
    _image_case("measure-shift-not-an-image", ("shift", "flat.tif", "text.png"), "text.png"),
    _image_case("measure-sfr-pixel-nan", ("sfr", "flat.tif", "--pixel-um", "nan"), "--pixel-um nan"),
    _image_case("measure-sfr-pixel-inf", ("sfr", "flat.tif", "--pixel-um", "inf", "--json"), "--pixel-um inf"),
    _image_case("measure-sfr-flat", ("sfr", "flat.tif"), "flat.tif", "no slanted edge"),
    _image_case("measure-chart-dark-dng", ("chart", "dark.dng"), "dark.dng"),
    _image_case("measure-focus-rail-nan", ("focus", "flat.tif", "flat.tif", "--rail-mm", "nan", "1"), "--rail-mm nan"),
    _image_case("measure-focus-rail-count", ("focus", "flat.tif", "flat.tif", "--rail-mm", "1"), "--rail-mm"),
]
MEASURE_CASES += [
    Case(
        f"measure-focus-manifest-{kind}",
        ("measure", "focus", "--manifest", "{tmp}/sweep.csv"),
        ("--manifest {tmp}/sweep.csv", needle),
        files={"sweep.csv": content},
    )
    for kind, content, needle in (
        ("latin-1", "file,rail_mm\nbild-ü.tif,1\n".encode("latin-1"), "byte 18: expected UTF-8"),
        ("binary", b"\xff\xfe\x00\x01\x80", "byte 0: expected UTF-8"),
        ("utf-16", "file,rail_mm\na.tif,1\n".encode("utf-16"), "expected UTF-8"),
    )
] + [
    Case(
        "measure-focus-manifest-no-header",
        ("measure", "focus", "--manifest", "{tmp}/sweep.csv"),
        ("{tmp}/sweep.csv", "file,rail_mm"),
        files={"sweep.csv": "a.tif;1\n"},
    ),
    Case(
        "measure-focus-manifest-rail-nan",
        ("measure", "focus", "--manifest", "{tmp}/sweep.csv"),
        ("{tmp}/sweep.csv:2", "rail_mm"),
        files={"sweep.csv": "file,rail_mm\na.tif,nan\n"},
    ),
]

# --------------------------------------------------------------------------------------------- spc / store
SPC_CASES = [
    Case(
        "spc-store-not-sqlite",
        ("spc", "--store", "{tmp}/s.sqlite", "--out", "{tmp}/spc"),
        ("not an SQLite",),
        files={"s.sqlite": b"\x89PNG\r\n\x1a\n" + bytes(100)},
    ),
    Case(
        "spc-store-mistyped-folder",
        ("spc", "--store", "{tmp}/reprots/results.sqlite", "--out", "{tmp}/spc"),
        ("{tmp}/reprots",),
    ),
    Case("spc-store-folder", ("spc", "--store", "{tmp}", "--out", "{tmp}/spc"), ("folder",)),
    Case("spc-store-scheme", ("spc", "--store", "mysql://x/y", "--out", "{tmp}/spc"), ("mysql://x/y",)),
    Case(
        "spc-store-corrupt-body",
        ("spc", "--store", "{tmp}/c.sqlite", "--out", "{tmp}/spc"),
        ("{tmp}/c.sqlite", "not a usable results store"),
        files={"c.sqlite": b"SQLite format 3\x00" + bytes(range(256)) * 40},
    ),
    Case("spc-since-bad", ("spc", "--since", "yesterday"), ("--since",)),
    Case("report-missing-run", ("report", "{tmp}/none"), ("{tmp}/none",)),
    Case(
        "report-store-and-record-bad",
        ("report", "{tmp}/run", "--no-pdf", "--store", "{tmp}/s.sqlite"),
        ("record.json",),
        files={"s.sqlite": "text", "run/record.json": ""},
    ),
    Case("soak-minutes-zero", ("soak", "--minutes", "0"), ("--minutes",)),
    Case("soak-rate-2", ("soak", "--restart-rate", "2"), ("--restart-rate",)),
    Case("soak-rate-nan", ("soak", "--fault-rate", "nan"), ("--fault-rate",)),
    Case("soak-timeout-inf", ("soak", "--run-timeout", "inf"), ("--run-timeout",)),
    Case("soak-minutes-nan", ("soak", "--minutes", "nan"), ("--minutes",)),
    Case("soak-reports-file", ("soak", "--reports", "{tmp}/f"), ("--reports",), files={"f": "x"}),
    Case("unknown-command", ("levitate",), ("levitate",)),
    Case("signoff-unknown-flag", ("signoff", "--turbo"), ("--turbo",)),
]

ALL_CASES: list[Case] = (
    STATION_FIELD_CASES
    + STATION_MISSING_CASES
    + STATION_SEMANTIC_CASES
    + FILE_CASES
    + UNIT_CASES
    + LIMIT_CASES
    + OPTION_CASES
    + RECORD_CASES
    + CAPTURE_CASES
    + SERVE_CASES
    + SPC_CASES
    + MEASURE_CASES
    + EIO_CASES
)

assert len({c.id for c in ALL_CASES}) == len(ALL_CASES), "case ids must be unique"
