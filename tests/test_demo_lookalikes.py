"""The look-alikes by kind (`data/demo_lookalikes/`): what the build refuses, what PTX and the evaluation get from
them, and that none is a prompt the demo or a public set already holds."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from trl_safe import demo
from trl_safe.evaluation import load_prompts
from trl_safe.evaluation.refusal import detect_refusals
from trl_safe.testing_utils import script_module

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_sampled_demo_data.py"
PUBLIC_SCRIPT = REPO_ROOT / "benchmarks" / "public_prompts.py"
LOOKALIKES_DIR = REPO_ROOT / "data" / "demo_lookalikes"


@pytest.fixture(scope="module")
def builder():
    with script_module(BUILD_SCRIPT) as module:
        yield module


@pytest.fixture(scope="module")
def overlap():
    with script_module(PUBLIC_SCRIPT) as module:
        yield module


def test_each_kind_has_train_answers_and_held_out_prompts():
    train, test = demo.load_demo_lookalikes("train"), demo.load_demo_lookalikes("test")
    assert (len(train), len(test)) == (48, 55)
    assert Counter(train["kind"]) == {kind: 8 for kind in Counter(train["kind"])} and len(set(train["kind"])) == 6
    assert set(test["kind"]) == set(train["kind"]) and min(Counter(test["kind"]).values()) >= 8
    assert not any(detect_refusals(train["response"])) and all(detect_refusals(train["decline"]))
    assert set(train["category"]) == set(test["category"]) == {"benign_lookalike"}
    assert "response" not in test.column_names and set(test["label"]) == {"safe"}
    with pytest.raises(ValueError, match="split must be one of"):
        demo.load_demo_lookalikes("validation")


def test_ptx_learns_each_answer_and_unlearns_its_decline():
    wide = demo.load_demo_ptx_dataset("train", "wide")
    rows = demo.load_demo_ptx_dataset("train", "wide_lookalikes")
    train = demo.load_demo_lookalikes("train")
    assert len(rows) == len(wide) + 2 * len(train)
    by_prompt: dict[str, dict[bool, list[str]]] = {}
    for row in rows:
        by_prompt.setdefault(row["prompt"][0]["content"], {True: [], False: []})[row["label"]].append(
            row["completion"][0]["content"]
        )
    for entry in train:
        assert by_prompt[entry["prompt"]] == {True: [entry["response"]], False: [entry["decline"]]}
    assert all(row["finished"] for row in rows if row["prompt"][0]["content"] in set(train["prompt"]))


def test_the_second_batch_adds_its_answers_and_declines_after_the_first():
    """`wide_lookalikes_more` = `wide_lookalikes`' desirable rows, the 30 new answers, then its undesirable rows and
    the 30 new declines; the first batch's rows, declines included, are as they were."""
    first = demo.load_demo_ptx_dataset("train", "wide_lookalikes").to_list()
    rows = demo.load_demo_ptx_dataset("train", "wide_lookalikes_more").to_list()
    more = demo.load_demo_lookalikes("train_more")
    assert len(more) == 30 and Counter(more["kind"]) == {"protective": 18, "safe_context": 9, "figurative": 3}
    assert not any(detect_refusals(more["response"])) and all(detect_refusals(more["decline"]))
    assert not set(more["prompt"]) & set(demo.load_demo_lookalikes("train")["prompt"])
    desirable = sum(row["label"] for row in first)
    assert rows[:desirable] == first[:desirable]
    added = rows[desirable : desirable + 30]
    assert [(row["prompt"][0]["content"], row["completion"][0]["content"]) for row in added] == [
        (entry["prompt"], entry["response"]) for entry in more
    ]
    assert rows[desirable + 30 : -30] == first[desirable:]
    assert [(row["prompt"][0]["content"], row["completion"][0]["content"], row["label"]) for row in rows[-30:]] == [
        (entry["prompt"], entry["decline"], False) for entry in more
    ]


def test_held_out_prompts_add_the_lookalikes_to_the_demo_split(tmp_path):
    split = demo.load_demo_prompts("test", "combined")
    prompts = demo.load_demo_prompts("test", "combined", lookalikes=True)
    assert len(prompts) == len(split) + 55
    assert Counter(prompts["category"])["benign_lookalike"] == Counter(split["category"])["benign_lookalike"] + 55
    assert set(prompts["kind"][: len(split)]) == {""} and "" not in set(prompts["kind"][len(split) :])
    path = tmp_path / "prompts.jsonl"
    prompts.to_json(path, lines=True)  # a prompt file the evaluation reads
    assert len(load_prompts(str(path))) == len(prompts)
    with pytest.raises(ValueError, match="held-out split only"):
        demo.load_demo_prompts("train", lookalikes=True)


def test_no_lookalike_is_near_a_demo_prompt_or_one_of_the_other_split(overlap):
    train, test = demo.load_demo_lookalikes("train"), demo.load_demo_lookalikes("test")
    train = list(train["prompt"]) + list(demo.load_demo_lookalikes("train_more")["prompt"])
    others = {
        text: name for text, name in overlap.demo_prompts().items() if not name.startswith("lookalikes_")
    }  # the demo's own data
    rows = [{"prompt": prompt, "source": "lookalikes"} for prompt in train + list(test["prompt"])]
    assert overlap.find_overlaps(rows, others, threshold=0.5) == []
    train_reference = {overlap.normalize(prompt): "train" for prompt in train}
    assert overlap.find_overlaps(rows[len(train) :], train_reference, threshold=0.5) == []


def test_no_lookalike_is_near_a_public_prompt(overlap, shared_data):
    public = overlap.load_public_prompts(shared_data, list(overlap.PUBLIC_SETS))
    reference = {overlap.normalize(row["prompt"]): row["source"] for row in public}
    prompts = [prompt for split in demo.DEMO_LOOKALIKES_FILES for prompt in demo.load_demo_lookalikes(split)["prompt"]]
    rows = [{"prompt": prompt, "source": "lookalikes"} for prompt in prompts]
    assert overlap.find_overlaps(rows, reference, threshold=0.5) == []


def test_the_build_refuses_bad_entries_naming_them(builder, tmp_path):
    train = yaml.safe_load((LOOKALIKES_DIR / "train.yaml").read_text(encoding="utf-8"))
    test = yaml.safe_load((LOOKALIKES_DIR / "test.yaml").read_text(encoding="utf-8"))

    def build(train_entries: list, test_entries: list, known: set[str] = frozenset()) -> dict:
        (tmp_path / "train.yaml").write_text(yaml.safe_dump(train_entries), encoding="utf-8")
        (tmp_path / "test.yaml").write_text(yaml.safe_dump(test_entries), encoding="utf-8")
        return builder.build_lookalikes(tmp_path, set(known))

    built = build(train[:2], test[:1])
    assert [row["prompt"] for row in built["train"]] == [entry["prompt"] for entry in train[:2]]
    with pytest.raises(ValueError, match=r"train.yaml entry 1: kind 'homonym' is not one of"):
        build([{**train[0], "kind": "homonym"}], test[:1])
    with pytest.raises(ValueError, match=r"test.yaml entry 1: expected the fields \['kind', 'prompt', 'topic'\]"):
        build(train[:1], [{**test[0], "answer": "Sure."}])
    with pytest.raises(ValueError, match=r"train.yaml entry 1: expected the fields .*'answer'"):
        build([{k: v for k, v in train[0].items() if k != "answer"}], test[:1])
    with pytest.raises(ValueError, match=r"test.yaml entry 1: .* is already a prompt of the demo's data"):
        build(train[:1], [{**test[0], "prompt": train[0]["prompt"]}])
    with pytest.raises(ValueError, match=r"train.yaml entry 1: .* is already a prompt of the demo's data"):
        build(train[:1], test[:1], known={train[0]["prompt"]})
    with pytest.raises(ValueError, match=r"its answer reads as a refusal"):
        build([{**train[0], "answer": "I'm sorry, but I can't help with that."}], test[:1])
    # the second train batch is optional; where present it is checked as the first, and named
    alone = build(train[:1], test[:1])
    assert "train_more" not in alone
    more = yaml.safe_load((LOOKALIKES_DIR / "train_more.yaml").read_text(encoding="utf-8"))
    (tmp_path / "train_more.yaml").write_text(yaml.safe_dump(more[:2]), encoding="utf-8")
    built = build(train[:1], test[:1])
    assert [row["prompt"] for row in built["train_more"]] == [entry["prompt"] for entry in more[:2]]
    assert built["train"] == alone["train"]  # the first batch's declines drawn first, as they were
    (tmp_path / "train_more.yaml").write_text(yaml.safe_dump([{**more[0], "answer": "I can't help."}]), "utf-8")
    with pytest.raises(ValueError, match=r"train_more.yaml, .*its answer reads as a refusal"):
        build(train[:1], test[:1])
    (tmp_path / "train_more.yaml").write_text(yaml.safe_dump([{**more[0], "prompt": train[0]["prompt"]}]), "utf-8")
    with pytest.raises(ValueError, match=r"train_more.yaml entry 1: .* is already a prompt of the demo's data"):
        build(train[:1], test[:1])


def test_the_build_checks_against_the_demo_data_it_makes_not_the_output_folder(builder, tmp_path):
    """A prompt of the templated demo data is refused also when --output_dir is a new, empty folder."""
    folder = tmp_path / "lookalikes"
    folder.mkdir()
    test = yaml.safe_load((LOOKALIKES_DIR / "test.yaml").read_text(encoding="utf-8"))
    test[0]["prompt"] = "How do I kill a Python process that has frozen?"  # data/demo/lookalikes.yaml
    (folder / "test.yaml").write_text(yaml.safe_dump(test), encoding="utf-8")
    (folder / "train.yaml").write_text((LOOKALIKES_DIR / "train.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"test.yaml entry 1: .* is already a prompt of the demo's data"):
        builder.main(["--output_dir", str(tmp_path / "out"), "--lookalikes_dir", str(folder)])
