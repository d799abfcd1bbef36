"""The README's and the docs' Python snippets run as written on a CPU (issue 13, "first contact").

Each snippet is taken from its Markdown file and executed with only two kinds of change: Hub names become tiny local
models and data (the Hub is out of reach in CI), and every `...Config(` gets `max_steps=1` so that a snippet trains
one step instead of three epochs. Precision, batch sizes and everything else stay as written, so a snippet that
stops on a CPU (TRL's bf16 default) or that reads a model it never saved fails here.
"""

import json
import os
import re
from pathlib import Path

import datasets
import pytest
from datasets import Dataset, DatasetDict

import trl_safe.data
from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_scorer, make_tiny_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO_ROOT / markdown).read_text(), flags=re.S)


def pku_rows(n: int = 8) -> Dataset:
    rows = []
    for i in range(n):
        rows.append(
            {
                "prompt": f"Question {i}: how do I do thing {i}?",
                "response_0": f"Here is a careful answer {i}.",
                "response_1": f"Do something risky {i}!",
                "is_response_0_safe": True,
                "is_response_1_safe": i % 2 == 0,
                "better_response_id": i % 2,
                "safer_response_id": 0,
            }
        )
    return Dataset.from_list(rows)


@pytest.fixture(scope="module")
def tiny_hub(tmp_path_factory) -> dict[str, str]:
    """Local stand-ins for the Hub models the snippets name: a policy, a trained reward and cost model."""
    root = tmp_path_factory.mktemp("hub")
    tokenizer = make_tiny_tokenizer()
    models = {
        "policy": make_tiny_causal_lm(tokenizer),
        "reward": make_tiny_scorer(tokenizer, seed=1),
        "cost": make_tiny_scorer(tokenizer, seed=2),
    }
    paths = {}
    for name, model in models.items():
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        paths[name] = str(root / name)
    return paths


@pytest.fixture
def offline_snippet_runner(tiny_hub, tmp_path, monkeypatch):
    """Run a snippet in a fresh folder with the Hub names swapped for `tiny_hub` and PKU-SafeRLHF for tiny rows."""
    real_load_dataset = datasets.load_dataset

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        if path != "PKU-Alignment/PKU-SafeRLHF":
            return real_load_dataset(path, name=name, split=split, **kwargs)
        whole = DatasetDict({"train": pku_rows(), "test": pku_rows(4)})
        return whole if split is None else whole[split]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(trl_safe.data, "load_dataset", fake_load_dataset)
    monkeypatch.chdir(tmp_path)
    names = {
        "Qwen/Qwen2.5-0.5B-Instruct": tiny_hub["policy"],
        "HuggingFaceTB/SmolLM2-135M-Instruct": tiny_hub["policy"],
        "my-sft-model": tiny_hub["policy"],
        "my-org/qwen-reward": tiny_hub["reward"],
        "my-reward-model": tiny_hub["reward"],
        "my-cost-model": tiny_hub["cost"],
        "my-sft": tiny_hub["policy"],
        "my-ppo-lag": tiny_hub["policy"],
        "my-reward": tiny_hub["reward"],
        "my-cost": tiny_hub["cost"],
    }

    def run(code: str, namespace: dict | None = None) -> dict:
        """Execute `code` (in `namespace`, to chain the blocks of one page) and return its namespace."""
        for hub_name, local in names.items():
            code = code.replace(f'"{hub_name}"', repr(local))
        code = re.sub(r"\b(\w*Config)\(", r"\1(max_steps=1, ", code)
        namespace = {"__name__": "__snippet__"} if namespace is None else namespace
        exec(compile(code, "<snippet>", "exec"), namespace)  # noqa: S102 - the project's own documentation
        return namespace

    return run


def test_readme_usage_runs_on_a_cpu(offline_snippet_runner):
    (snippet,) = python_blocks("README.md")
    namespace = offline_snippet_runner(snippet)
    assert namespace["trainer"].state.global_step == 1
    assert os.path.isfile("qwen-cost/config.json")  # the cost model the PPO-Lag step reads


@pytest.mark.parametrize(
    ("markdown", "index"),
    [("docs/cost_model.md", 0), ("docs/ppo.md", 0), ("docs/ppo_lag.md", 0), ("docs/sft.md", 0)],
)
def test_training_snippets_in_the_docs_run_on_a_cpu(offline_snippet_runner, markdown, index):
    namespace = offline_snippet_runner(python_blocks(markdown)[index])
    assert namespace["trainer"].state.global_step == 1


def test_data_snippets_in_the_docs_run(offline_snippet_runner):
    with open("my_pairs.jsonl", "w") as file:
        for row in pku_rows(3):
            file.write(json.dumps(row) + "\n")
    namespace: dict = {"__name__": "__snippet__"}
    for block in python_blocks("docs/data.md"):  # one page: later blocks use the names of earlier ones
        offline_snippet_runner(block, namespace)
    assert len(namespace["mine"]) == 3 and namespace["dropped"].count == 0


def test_the_apology_preamble_snippet_says_what_the_detector_does():
    (block,) = [block for block in python_blocks("docs/evaluation.md") if "apology_aware" in block]
    namespace: dict = {}
    exec(block, namespace)
    # the snippet's comments: each line's verdict, and the default detector's for the first
    lines = [line for line in block.splitlines() if line.startswith("detector(")]
    verdicts = [eval(line.split("#")[0], namespace) for line in lines]
    assert verdicts == [False, True]
    assert namespace["RefusalDetector"]()(eval(lines[0].split("#")[0][len("detector") :])) is True
    assert namespace["judge"].refusal_detector is namespace["detector"]
