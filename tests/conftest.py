import os
from pathlib import Path

# No Hub, no telemetry, deterministic small thread pools: the suite must run offline on 2 cores.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))

# Real safety data sets live beside the repository (../shared/data); tests that use them skip without them.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def module(request):
    """The stand-alone script (`benchmarks/`, `scripts/`: not a package) that the test module names in `SCRIPT`,
    imported once for that test module and forgotten afterwards."""
    from trl_safe.testing_utils import script_module

    with script_module(request.module.SCRIPT) as loaded:
        yield loaded


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def tiny_tokenizer():
    from trl_safe.testing_utils import make_tiny_tokenizer

    return make_tiny_tokenizer()


@pytest.fixture
def tiny_tokenizer_pad_eos():
    from trl_safe.testing_utils import make_tiny_tokenizer

    return make_tiny_tokenizer(pad_equals_eos=True)


@pytest.fixture
def save_checkpoints(tmp_path, tiny_tokenizer):
    """`save_checkpoints(policy=model, reward=scorer, ...)` saves each model with the tiny tokenizer in
    `tmp_path/<name>`, as a local checkpoint a script or a trainer loads by path; returns the paths by name."""

    def save(**models) -> dict[str, Path]:
        paths = {}
        for name, model in models.items():
            paths[name] = tmp_path / name
            model.save_pretrained(paths[name])
            tiny_tokenizer.save_pretrained(paths[name])
        return paths

    return save


def pytest_collection_modifyitems(items):
    """Mark every test that launches processes with accelerate (`run_distributed`) as `multiprocess`, so that
    `make test-fast` (`-m "not slow and not multiprocess"`) leaves it out without anyone remembering the mark."""
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and "run_distributed" in function.__code__.co_names:
            item.add_marker(pytest.mark.multiprocess)
