"""The DNG reader against malformed and hostile files: only :class:`~rig.errors.ImageInputError`, and no bomb.

Mutants come from :mod:`tests.faults.dng_mutants` (seeded). The fuzz test's bound is its mutation count, not the
wall clock (about 1 ms per mutant on one core); the bomb test runs the reader in a subprocess whose address space
is capped at 1 GiB with ``resource.setrlimit(RLIMIT_AS)``, so an allocation of the declared image would fail
there with MemoryError instead of being refused up front.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rig.errors import ImageInputError
from rig.spec.dng import read_dng
from tests.faults.dng_mutants import bombs, mutants, named_malformations, valid_dng

FUZZ_SEED = 20
FUZZ_MUTATIONS = 2400
MEMORY_CAP_BYTES = 1 << 30


def test_the_unmutated_file_reads() -> None:
    image = read_dng(valid_dng())
    assert (image.width, image.height, image.iso, image.cfa_pattern) == (32, 24, 100, "RGGB")
    assert image.exposure_time_s == pytest.approx(0.01)


@pytest.mark.parametrize("name", sorted(named_malformations()))
def test_malformed_tags_name_the_tag(name: str) -> None:
    data, tag = named_malformations()[name]
    with pytest.raises(ImageInputError) as exc:
        read_dng(data, name=name)
    assert str(exc.value).startswith(f"{name}: {tag}"), str(exc.value)


@pytest.mark.timeout(300)
def test_byte_flips_and_tag_mutations_raise_only_image_input_errors() -> None:
    escaped: collections.Counter[str] = collections.Counter()
    outcomes = collections.Counter()
    for name, data in mutants(FUZZ_SEED, FUZZ_MUTATIONS):
        try:
            read_dng(data, name=name)
            outcomes["read"] += 1
        except ImageInputError as exc:
            outcomes["refused"] += 1
            message = str(exc)
            assert message.startswith(f"{name}: ") and "\n" not in message, message
        except Exception as exc:  # what the test is for: any other type escaping the reader
            escaped[f"{type(exc).__name__}: {exc}"[:200]] += 1
    assert not escaped, escaped.most_common(5)
    assert sum(outcomes.values()) == FUZZ_MUTATIONS
    # the mutants must really exercise the error paths (and some must still be readable)
    assert outcomes["refused"] > FUZZ_MUTATIONS // 4 and outcomes["read"] > 0, outcomes


@pytest.mark.parametrize("name", sorted(bombs()))
def test_bombs_are_refused_before_allocating(name: str) -> None:
    with pytest.raises(ImageInputError, match=r"budget|ratio|strips hold|truncated") as exc:
        read_dng(bombs()[name], name=name)
    assert str(exc.value).startswith(f"{name}: ")


@pytest.mark.timeout(120)
def test_bombs_are_refused_under_a_1_gib_memory_cap(tmp_path: Path) -> None:
    for name, data in bombs().items():
        (tmp_path / f"{name}.dng").write_bytes(data)
    script = textwrap.dedent(
        f"""
        import resource, sys
        from pathlib import Path
        from rig.errors import ImageInputError
        from rig.spec.dng import read_dng
        resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP_BYTES}, {MEMORY_CAP_BYTES}))
        for path in sorted(Path(sys.argv[1]).glob("*.dng")):
            try:
                read_dng(path)
                print("ACCEPTED", path.name)
            except ImageInputError:
                print("refused", path.name)
            except MemoryError:
                print("MEMORY", path.name)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = sorted(result.stdout.split("\n")[:-1])
    assert lines == sorted(f"refused {name}.dng" for name in bombs()), result.stdout + result.stderr
