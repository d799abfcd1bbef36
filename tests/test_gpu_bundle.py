"""benchmarks/gpu_bundle.py (`make gpu-wheels`): the check that the wheels for the GPU machine are complete.

The download itself needs the package index; these tests check, offline, the logic that decides whether a bundle
is complete for the machine, on wheels built in the test.
"""

import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import gpu_bundle  # noqa: E402


def make_wheel(folder: Path, name: str, version: str, requires: list[str] = ()) -> Path:
    wheel = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    metadata = "\n".join(
        ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", *(f"Requires-Dist: {r}" for r in requires)]
    )
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", metadata + "\n")
    return wheel


DEVICE = {"numpy": "2.5.2", "pyarrow": None, "transformers": "5.17.0", "huggingface-hub": "1.33.0"}


def test_a_complete_bundle_has_no_problem(tmp_path):
    wheels = [
        make_wheel(tmp_path, "dill", "0.4.1"),
        make_wheel(tmp_path, "datasets", "5.2.0", ["dill<0.4.2,>=0.3.0", "pyarrow>=24", "huggingface-hub>=1.31"]),
        # Requirements of extras and of other Pythons do not apply on the machine.
        make_wheel(
            tmp_path, "trl", "1.16.0", ["datasets>=4.7", "vllm; extra == 'vllm'", "tomli; python_version<'3.11'"]
        ),
    ]
    own = [Requirement("trl>=1.16,<2"), Requirement("numpy>=2")]
    assert gpu_bundle.check_closure(wheels, own, device=DEVICE) == []
    assert gpu_bundle.wheel_metadata(wheels[1])[:2] == ("datasets", "5.2.0")


def test_missing_excluded_duplicate_and_shadowing_wheels_are_problems(tmp_path):
    (tmp_path / "a").mkdir()
    wheels = [
        make_wheel(tmp_path, "datasets", "5.2.0", ["dill>=0.3", "huggingface-hub>=2.0"]),
        make_wheel(tmp_path / "a", "datasets", "4.0.0"),
        make_wheel(tmp_path, "numpy", "2.4.6"),
    ]
    problems = gpu_bundle.check_closure(wheels, [Requirement("evaluate")], device=DEVICE)
    assert problems == [
        "two versions of datasets: 5.2.0 and 4.0.0 (pip stops on duplicates)",
        "numpy-2.4.6-py3-none-any.whl replaces the machine's own numpy 2.5.2",
        "trl-safe needs evaluate, neither bundled nor on the machine",
        "datasets 5.2.0 needs dill>=0.3, neither bundled nor on the machine",
        "datasets 5.2.0 needs huggingface-hub>=2.0, but huggingface-hub 1.33.0 is on the machine",
    ]


def test_transformers_may_replace_the_machines_own_and_is_checked_against_its_neighbours(tmp_path):
    wheels = [make_wheel(tmp_path, "transformers", "5.23.0", ["huggingface-hub<3.0,>=1.31.0", "numpy>=1.17"])]
    assert gpu_bundle.check_closure(wheels, [Requirement("transformers>=5.0,<6")], device=DEVICE) == []
    (tmp_path / "newer").mkdir()
    too_new = [make_wheel(tmp_path / "newer", "transformers", "9.0.0", ["huggingface-hub>=5"])]
    assert gpu_bundle.check_closure(too_new, [], device=DEVICE) == [
        "transformers 9.0.0 needs huggingface-hub>=5, but huggingface-hub 1.33.0 is on the machine"
    ]


def test_the_bundle_takes_its_versions_from_the_constraints(tmp_path):
    pins = gpu_bundle.read_constraints()
    assert all(gpu_bundle.canonicalize_name(name) in pins for name in gpu_bundle.BUNDLED)
    assert set(gpu_bundle.REPLACED) <= set(gpu_bundle.BUNDLED)
    # Nothing else the machine holds is shipped: its torch and the rest of its stack stay in place.
    shipped = {gpu_bundle.canonicalize_name(name) for name in gpu_bundle.BUNDLED}
    assert (shipped - set(gpu_bundle.REPLACED)).isdisjoint(gpu_bundle.DEVICE_PACKAGES)
    bad = tmp_path / "constraints.txt"
    bad.write_text("# pins\ntrl==1.16.0\ndatasets>=5\n")
    with pytest.raises(ValueError, match=r"constraints.txt:3: expected 'name==version', got 'datasets>=5'"):
        gpu_bundle.read_constraints(bad)
