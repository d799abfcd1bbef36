"""The policy-sampled demo pairs: shipped files match their build, load through every adapter, have consistent labels,
disjoint splits, and no prompt from the public evaluation sets."""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from datasets import load_dataset

from trl_safe import demo
from trl_safe.data import load_preference_data, to_harmlessness_preferences, to_helpfulness_preferences, to_prompts
from trl_safe.testing_utils import script_module

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_sampled_demo_data.py"
SOURCE_DIR = REPO_ROOT / "data" / "demo_sampled"
ROUND2_DIR = REPO_ROOT / "data" / "demo_round2"
ROUND3_DIR = REPO_ROOT / "data" / "demo_round3"
ROUND4_DIR = REPO_ROOT / "data" / "demo_round4"
ROUND5_DIR = REPO_ROOT / "data" / "demo_round5"
TWINS_DIR = REPO_ROOT / "data" / "demo_twins"
TWINS_SAMPLED_DIR = REPO_ROOT / "data" / "demo_twins_sampled"
DECLINES_DIR = REPO_ROOT / "data" / "demo_declines"
HARM_CATEGORIES = {
    "theft", "violence", "weapons", "drugs", "cybercrime", "fraud", "privacy", "harassment", "dangerous_behaviour",
}  # fmt: skip


@pytest.fixture(scope="module")
def builder():
    with script_module(BUILD_SCRIPT) as module:
        yield module


@pytest.fixture(scope="module")
def sampled():
    return demo.load_demo_dataset(config="sampled")


def normalise(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def test_shipped_files_are_the_build_output(builder, tmp_path):
    builder.main(["--output_dir", str(tmp_path)])
    names = (
        "sampled_train.jsonl",
        "sampled_test.jsonl",
        "round2_train.jsonl",
        "round3_train.jsonl",
        "contrast_train.jsonl",
        "round4_train.jsonl",
        "round5_train.jsonl",
        "twins_train.jsonl",
        "declines_train.jsonl",
        "twins_sampled_train.jsonl",
        "lookalikes_train.jsonl",
        "lookalikes_test.jsonl",
    )
    for name in names:
        shipped = (demo.demo_data_dir() / name).read_text(encoding="utf-8")
        assert (tmp_path / name).read_text(encoding="utf-8") == shipped, name


@pytest.mark.parametrize(
    ("kind", "round_dir", "count", "categories"),
    [
        ("round2", ROUND2_DIR, 135, HARM_CATEGORIES),  # what the round-one policy said to harmful requests
        ("round3", ROUND3_DIR, 78, {"benign", "benign_lookalike"}),  # a later policy's declines of harmless ones
        ("round4", ROUND4_DIR, 135, HARM_CATEGORIES),  # what an SFT-then-PPO-Lag policy said to harmful requests
        ("round5", ROUND5_DIR, 135, HARM_CATEGORIES),  # ... and one trained against the round-four cost model
    ],
)
def test_later_rounds_hold_train_prompts_only_each_labelled_from_its_raw_answers(
    sampled, kind, round_dir, count, categories
):
    """Rounds two to five: answers sampled from a policy trained on the earlier rounds, to round one's train
    prompts only (never a held-out prompt), every one labelled, the pair as sampled."""
    rows = demo.load_demo_dataset("train", config="iterated_round5").filter(
        lambda row: row["pair_type"].startswith(kind)
    )
    assert len(rows) == count
    assert set(rows["prompt"]) <= set(sampled["train"]["prompt"])
    assert set(rows["category"]) == categories
    raw = {}
    for line in (round_dir / "raw_samples.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        raw[(row["prompt"], row["answer_id"].rsplit(".", 1)[1])] = row["response"]
    assert len(raw) == 2 * len(rows)
    for row in rows:
        assert (row["response_0"], row["response_1"]) == (raw[(row["prompt"], "s0")], raw[(row["prompt"], "s1")])
        safe = (row["is_response_0_safe"], row["is_response_1_safe"])
        if safe[0] != safe[1]:
            assert row["safer_response_id"] == (0 if safe[0] else 1) and row["pair_type"] == f"{kind}_safe_vs_unsafe"
        elif safe[0]:
            assert row["safer_response_id"] == row["better_response_id"] and row["pair_type"] == f"{kind}_both_safe"


def test_round3_labels_say_which_answers_decline_and_a_decline_never_wins_against_an_answer(builder):
    """Round three is there because the policy declined harmless requests: every answer to a harmless prompt is
    safe, so between a decline and an on-topic answer the answer is both better and (safer = better) safer."""
    labels = [json.loads(line) for line in (ROUND3_DIR / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    mixed = [label for label in labels if label["refusal"][0] != label["refusal"][1]]
    assert all(label["safe"] == [True, True] for label in labels)
    assert mixed and all(not label["refusal"][label["better"]] for label in mixed)
    mix = builder.refusal_mix(ROUND3_DIR)
    assert sum(counts["answers"] for counts in mix.values()) == 2 * len(labels)
    assert mix["benign_lookalike"]["refusals"] > mix["benign"]["refusals"]


def test_round4_labels_say_which_answers_decline_and_compliance_is_the_more_helpful(builder):
    """Round four asked harmful prompts: where one answer declines and the other goes along (unsafe), the compliant
    one is the more helpful to the request as asked (`better`) and the decline, unless help follows it, the safer."""
    labels = [json.loads(line) for line in (ROUND4_DIR / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(len(label["refusal"]) == 2 for label in labels)
    decline_vs_compliance = [
        (label, label["refusal"].index(True))
        for label in labels
        if label["refusal"][0] != label["refusal"][1] and not label["safe"][label["refusal"].index(False)]
    ]
    assert decline_vs_compliance
    for label, decline in decline_vs_compliance:
        assert label["better"] == 1 - decline, label["prompt_id"]
    mix = builder.refusal_mix(ROUND4_DIR)
    assert set(mix) == HARM_CATEGORIES and sum(counts["answers"] for counts in mix.values()) == 2 * len(labels)


def test_round5_labels_say_which_answers_decline_and_help_after_a_decline_is_unsafe(builder):
    """Round five's policy declines two answers in five and then often helps: a decline that goes on to help is
    labelled unsafe (round two's rule), and where a decline that stops there meets an answer that goes along, the
    compliant one is the more helpful. (A decline followed by help may itself be the more helpful: fraud-12.)"""
    labels = [json.loads(line) for line in (ROUND5_DIR / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    declines = [(label, i) for label in labels for i in (0, 1) if label["refusal"][i]]
    assert any(not label["safe"][i] for label, i in declines)  # help after the decline
    assert any(label["safe"][i] for label, i in declines)
    clean_decline_vs_compliance = [
        (label, label["refusal"].index(True))
        for label in labels
        if label["refusal"][0] != label["refusal"][1]
        and label["safe"][label["refusal"].index(True)]
        and not label["safe"][label["refusal"].index(False)]
    ]
    assert clean_decline_vs_compliance
    for label, decline in clean_decline_vs_compliance:
        assert label["better"] == 1 - decline, label["prompt_id"]
    mix = builder.refusal_mix(ROUND5_DIR)
    assert set(mix) == HARM_CATEGORIES and sum(counts["answers"] for counts in mix.values()) == 2 * len(labels)


@pytest.mark.parametrize(
    ("config", "base", "rounds"),
    [
        ("iterated", "combined", ("round2",)),
        ("combined_round3", "combined", ("round3",)),
        ("iterated_round3", "combined", ("round2", "round3")),
        ("combined_contrast", "combined", ("round3", "contrast")),
        ("iterated_round4", "combined", ("round2", "round3", "contrast", "round4")),
        ("iterated_round5", "combined", ("round2", "round3", "contrast", "round4", "round5")),
    ],
)
def test_later_configurations_add_train_rows_and_keep_combined_test_split(config, base, rounds):
    # Every later configuration trains on more rows and holds out exactly `combined`'s test split, so the figures
    # measured on the held-out prompts stay comparable.
    later, combined = demo.load_demo_dataset(config=config), demo.load_demo_dataset(config=base)
    added = later["train"].to_list()[len(combined["train"]) :]
    assert later["train"].to_list()[: len(combined["train"])] == combined["train"].to_list()
    assert {row["pair_type"].split("_", 1)[0] for row in added} == set(rounds)
    assert later["test"].to_list() == combined["test"].to_list()


def test_contrast_pairs_put_each_round3_decline_below_the_starts_own_answer(sampled):
    """Every answer of round three labelled as declining is paired once against the start's better answer to the
    same (harmless, train) prompt; that answer is the better and the safer, both are labelled safe."""
    labels = [json.loads(line) for line in (ROUND3_DIR / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    raw = {}
    for line in (ROUND3_DIR / "raw_samples.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        raw[row["answer_id"]] = row["response"]
    declines = Counter()
    for label in labels:
        for index, sample in enumerate(("s0", "s1")):
            if label["refusal"][index]:
                declines[raw[f"{label['prompt_id']}.{sample}"]] += 1
    start = {row["prompt"]: row for row in sampled["train"]}
    rows = demo.load_demo_dataset("train", config="combined_contrast").filter(
        lambda row: row["pair_type"] == "contrast_answer_vs_decline"
    )
    assert len(rows) == sum(declines.values()) == 49
    paired = Counter()
    for row in rows:
        answer_id = row["better_response_id"]
        assert row["safer_response_id"] == answer_id
        assert row["is_response_0_safe"] and row["is_response_1_safe"] and row["prompt_label"] == "safe"
        first = start[row["prompt"]]  # a train prompt of round one: never a held-out one
        assert row[f"response_{answer_id}"] == first[f"response_{first['better_response_id']}"]
        paired[row[f"response_{1 - answer_id}"]] += 1
    assert paired == declines
    assert {row["better_response_id"] for row in rows} == {0, 1}  # the order is drawn, not fixed


def test_contrast_pairs_refuse_a_decline_labelled_unsafe(builder, tmp_path):
    labels = [json.loads(line) for line in (ROUND3_DIR / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    index = next(i for i, label in enumerate(labels) if label["refusal"][0])
    labels[index]["safe"][0] = False
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(label) + "\n" for label in labels), encoding="utf-8")
    (tmp_path / "raw_samples.jsonl").write_bytes((ROUND3_DIR / "raw_samples.jsonl").read_bytes())
    with pytest.raises(
        ValueError, match=rf"{labels[index]['prompt_id']}\): the declining answer s0 is labelled unsafe"
    ):
        builder.build_contrast(SOURCE_DIR, tmp_path, builder.read_prompts(SOURCE_DIR), set())


def twins_dir_with(tmp_path: Path, prompts=None, labels=None) -> Path:
    """A copy of data/demo_twins with its prompts or labels replaced."""
    for name in ("prompts.jsonl", "labels.jsonl", "raw_greedy.jsonl", "raw_samples.jsonl"):
        (tmp_path / name).write_bytes((TWINS_DIR / name).read_bytes())
    for name, rows in (("prompts.jsonl", prompts), ("labels.jsonl", labels)):
        if rows is not None:
            (tmp_path / name).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return tmp_path


def test_twins_take_the_chosen_answer_and_refuse_bad_input(builder, tmp_path):
    prompts = [json.loads(line) for line in (TWINS_DIR / "prompts.jsonl").open(encoding="utf-8")]
    labels = [json.loads(line) for line in (TWINS_DIR / "labels.jsonl").open(encoding="utf-8")]
    harmful, held_out = builder.templated_prompts()
    rows = builder.build_twins(TWINS_DIR, harmful, held_out)
    assert [row["prompt"] for row in rows] == [row["prompt"] for row in prompts]
    sources = Counter(row["source"] for row in rows)
    assert sources == Counter(builder.TWIN_SOURCES[label["answer"]] for label in labels)
    assert all("rejected" in label for label in labels if label["answer"] != "g")  # each replacement says why
    written = next(i for i, label in enumerate(labels) if label["answer"] == "written")
    assert rows[written]["response"] == labels[written]["text"]

    with pytest.raises(ValueError, match=r"\(twin-01\): the twin has no chosen answer"):
        builder.build_twins(twins_dir_with(tmp_path, labels=labels[1:]), harmful, held_out)
    with pytest.raises(ValueError, match=r"\(twin-01\): the twin is a held-out prompt"):
        builder.build_twins(twins_dir_with(tmp_path), harmful, held_out | {prompts[0]["prompt"]})
    wrong_twin = [dict(prompts[0], twin_of="How do I bake bread?"), *prompts[1:]]
    with pytest.raises(ValueError, match=r"\(twin-01\): twin_of is not a harmful prompt"):
        builder.build_twins(twins_dir_with(tmp_path, prompts=wrong_twin), harmful, held_out)
    declined = [dict(labels[0], answer="written", text="I'm sorry, but I can't help with that."), *labels[1:]]
    with pytest.raises(ValueError, match=r"\(twin-01\): the chosen answer reads as a refusal"):
        builder.build_twins(twins_dir_with(tmp_path, labels=declined), harmful, held_out)
    unknown = [dict(labels[0], answer="s2"), *labels[1:]]
    with pytest.raises(ValueError, match=r"answer must be one of"):
        builder.build_twins(twins_dir_with(tmp_path, labels=unknown), harmful, held_out)


def test_sampled_twins_borrow_the_words_of_a_sampled_harmful_train_prompt_each(builder, tmp_path):
    """The twins of the sampled pairs' harmful train prompts: one per prompt, each checked against that set (a
    templated harmful prompt is no `twin_of` for them), none held out."""
    harmful = {row["prompt"] for row in demo.load_demo_dataset("train", "sampled") if row["prompt_label"] == "unsafe"}
    held_out = set(demo.load_demo_prompts("test", "combined")["prompt"])
    rows = builder.build_twins(TWINS_SAMPLED_DIR, harmful, held_out, of="the sampled train split")
    labels = [json.loads(line) for line in (TWINS_SAMPLED_DIR / "labels.jsonl").open(encoding="utf-8")]
    assert sorted(row["twin_of"] for row in rows) == sorted(harmful) and len(rows) == 135
    assert Counter(row["source"] for row in rows) == Counter(builder.TWIN_SOURCES[lb["answer"]] for lb in labels)
    assert all("rejected" in label for label in labels if label["answer"] != "g")
    templated_harmful, _ = builder.templated_prompts()
    with pytest.raises(ValueError, match=r"\(stwin-001\): twin_of is not a harmful prompt of the sampled train split"):
        builder.build_twins(TWINS_SAMPLED_DIR, templated_harmful, held_out, of="the sampled train split")


def test_ptx_marks_exactly_the_cut_answers_as_unfinished():
    """`load_demo_ptx_dataset` (`open_cut_answers=True`, the default) says which answers SmolLM2 left unfinished:
    `own`'s rows all (each was cut at the 48-token limit, by the raw samples) and each twin as its raw answer was."""
    raw = {}
    for folder in (SOURCE_DIR, TWINS_DIR, TWINS_SAMPLED_DIR):
        for path in folder.glob("raw_*.jsonl"):
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                raw[(row["prompt"], row["response"])] = row["finished"]
    rows = demo.load_demo_ptx_dataset("train", "wide_twins")
    cut = [row for row in rows if not row["finished"]]
    assert len(cut) == 231 and all(row["label"] for row in cut)
    for row in rows:
        key = (row["prompt"][0]["content"], row["completion"][0]["content"])
        # an answer of SmolLM2's own is marked as its raw sample was; a written one (not in raw) is whole
        assert row["finished"] == raw.get(key, True), key


def test_declines_cover_every_harmful_train_prompt_once_and_refuse_bad_input(builder, tmp_path):
    prompts = builder.read_prompts(SOURCE_DIR)
    test_prompts = set(demo.load_demo_prompts("test", "sampled")["prompt"])
    labels = [json.loads(line) for line in (DECLINES_DIR / "declines.jsonl").open(encoding="utf-8")]
    rows = builder.build_declines(DECLINES_DIR, prompts, test_prompts)
    harmful_train = {
        row["prompt"] for row in demo.load_demo_dataset("train", "sampled") if row["prompt_label"] == "unsafe"
    }
    assert [row["prompt"] for row in rows] == [prompts[label["prompt_id"]]["prompt"] for label in labels]
    assert {row["prompt"] for row in rows} == harmful_train and len(rows) == len(harmful_train) == 135
    assert not {row["prompt"] for row in rows} & test_prompts

    def declines_with(rows_: list[dict]) -> Path:
        (tmp_path / "declines.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows_), encoding="utf-8")
        return tmp_path

    first = labels[0]["prompt_id"]
    with pytest.raises(ValueError, match=rf"without a decline: \['{first}'\]"):
        builder.build_declines(declines_with(labels[1:]), prompts, test_prompts)
    with pytest.raises(ValueError, match=rf"\({first}\): a second decline"):
        builder.build_declines(declines_with([*labels, labels[0]]), prompts, test_prompts)
    with pytest.raises(ValueError, match=rf"\({first}\): the prompt is held out"):
        builder.build_declines(DECLINES_DIR, prompts, test_prompts | {prompts[first]["prompt"]})
    benign = next(i for i, row in prompts.items() if row["prompt_label"] == "safe")
    with pytest.raises(ValueError, match=rf"\({benign}\): not a harmful prompt"):
        builder.build_declines(declines_with([{"prompt_id": benign, "text": "I can't help."}]), prompts, test_prompts)
    answered = [dict(labels[0], text="Here's how: first, wait until dark."), *labels[1:]]
    with pytest.raises(ValueError, match=rf"\({first}\): the text does not read as a refusal"):
        builder.build_declines(declines_with(answered), prompts, test_prompts)


def test_a_later_round_refuses_a_held_out_prompt_and_an_unlabelled_answer(builder, tmp_path):
    labels = (ROUND2_DIR / "labels.jsonl").read_text(encoding="utf-8").splitlines()
    raw = (ROUND2_DIR / "raw_samples.jsonl").read_text(encoding="utf-8")
    (tmp_path / "raw_samples.jsonl").write_text(raw, encoding="utf-8")
    (tmp_path / "labels.jsonl").write_text("\n".join(labels[1:]) + "\n", encoding="utf-8")
    first = json.loads(labels[0])["prompt_id"]
    with pytest.raises(ValueError, match=rf"answers without labels: \['{first}'\]"):
        builder.build_round(tmp_path, builder.read_prompts(SOURCE_DIR), set(), kind="round2")
    (tmp_path / "labels.jsonl").write_text("\n".join(labels) + "\n", encoding="utf-8")
    prompts = {row["id"]: row["prompt"] for row in map(json.loads, (SOURCE_DIR / "prompts.jsonl").open())}
    with pytest.raises(ValueError, match=rf"prompts of the held-out test split were labelled: \['{first}'\]"):
        builder.build_round(tmp_path, builder.read_prompts(SOURCE_DIR), {prompts[first]}, kind="round2")


def test_every_sampled_prompt_is_labelled_and_every_answer_was_sampled(builder):
    splits, report = builder.build(SOURCE_DIR)
    assert report["unlabelled_prompts"] == []
    assert len(splits["train"]) + len(splits["test"]) + len(report["unsampled_prompts"]) == 340
    raw = {}
    for path in SOURCE_DIR.glob("raw_samples*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            raw[(row["prompt"], row["answer_id"].rsplit(".", 1)[1])] = row["response"]
    for row in splits["train"] + splits["test"]:
        assert row["response_0"] == raw[(row["prompt"], "s0")]
        assert row["response_1"] == raw[(row["prompt"], "s1")]


def test_loads_through_the_folder_configs_and_the_adapters(sampled):
    folder = str(demo.demo_data_dir())
    assert {split: len(rows) for split, rows in load_dataset(folder, "sampled").items()} == {
        split: len(sampled[split]) for split in ("train", "test")
    }
    # The README's configurations (what `load_dataset(folder, config)` reads) are `demo.DEMO_CONFIGS`.
    for config in demo.DEMO_CONFIGS:
        loaded = load_dataset(folder, config)
        assert {split: len(rows) for split, rows in loaded.items()} == {
            split: len(demo.load_demo_dataset(split, config=config)) for split in ("train", "test")
        }, config
    # The folder's default configuration is still the templated data alone.
    assert len(load_preference_data(folder, split="train")) == len(demo.load_demo_dataset("train"))
    combined = demo.load_demo_dataset("train", config="combined")
    assert len(combined) == len(demo.load_demo_dataset("train")) + len(sampled["train"])
    assert combined.column_names == sampled["train"].column_names == demo.load_demo_dataset("train").column_names
    for split in ("train", "test"):
        helpful = to_helpfulness_preferences(sampled[split], conversational=True)
        harmless = to_harmlessness_preferences(sampled[split], conversational=True, on_contradiction="raise")
        assert len(helpful) == len(harmless) == len(sampled[split])
        assert len(to_prompts(sampled[split])) == len(sampled[split])  # one pair per prompt


def test_labels_are_consistent(sampled):
    for split in ("train", "test"):
        for index, row in enumerate(sampled[split]):
            safe = (row["is_response_0_safe"], row["is_response_1_safe"])
            where = f"{split}[{index}] {row['prompt']!r}"
            if safe[0] != safe[1]:
                assert row["safer_response_id"] == (0 if safe[0] else 1), where
                assert row["pair_type"] == "sampled_safe_vs_unsafe", where
            elif all(safe):
                assert row["safer_response_id"] == row["better_response_id"], where
                assert row["pair_type"] == "sampled_both_safe", where
            else:
                assert row["pair_type"] == "sampled_both_unsafe", where
            if row["prompt_label"] == "safe":
                assert row["category"] in ("benign", "benign_lookalike"), where
            else:
                assert row["category"] in HARM_CATEGORIES, where


def test_splits_hold_disjoint_prompts_and_every_harm_category(sampled):
    train = set(sampled["train"]["prompt"])
    test = set(sampled["test"]["prompt"])
    assert not train & test
    templated = set(demo.load_demo_dataset("train")["prompt"]) | set(demo.load_demo_dataset("test")["prompt"])
    assert not (train | test) & templated
    assert {normalise(p) for p in train}.isdisjoint({normalise(p) for p in test})
    test_categories = Counter(sampled["test"]["category"])
    assert HARM_CATEGORIES <= set(test_categories)
    # The start must answer some held-out harmful prompts unsafely, or the held-out set proves nothing.
    unsafe_test = sum(
        not (row["is_response_0_safe"] and row["is_response_1_safe"])
        for row in sampled["test"]
        if row["prompt_label"] == "unsafe"
    )
    assert unsafe_test >= 10


def public_prompts(shared: Path) -> set[str]:
    texts = set()
    for name, column in (
        ("advbench_harmful_behaviors.csv", "goal"),
        ("harmbench_behaviors_text_all.csv", "Behavior"),
        ("xstest_prompts.csv", "prompt"),
    ):
        with (shared / name).open(newline="", encoding="utf-8") as handle:
            texts.update(row[column] for row in csv.DictReader(handle))
    for line in (shared / "do_not_answer_prompts.jsonl").read_text(encoding="utf-8").splitlines():
        texts.add(json.loads(line)["prompt"])
    texts.update(row["prompt"] for row in json.loads((shared / "safe_rlhf_eval_problem.json").read_text()))
    for line in (shared / "pku_saferlhf_test_sample.jsonl").read_text(encoding="utf-8").splitlines():
        texts.add(json.loads(line)["prompt"])
    with gzip.open(shared / "hh_rlhf_harmless_base_test.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            match = re.search(r"Human: (.*?)\n\nAssistant", json.loads(line)["chosen"], re.S)
            if match:
                texts.add(match.group(1).strip())
    return texts


def test_no_prompt_comes_from_a_public_set(shared_data):
    public = public_prompts(shared_data)
    assert len(public) > 4000  # every set was read
    public_normalised = {normalise(text) for text in public}
    public_tokens = [set(normalise(text).split()) for text in public]
    authored = [json.loads(line)["prompt"] for line in (SOURCE_DIR / "prompts.jsonl").read_text().splitlines()]
    for prompt in authored:
        assert normalise(prompt) not in public_normalised, prompt
        tokens = set(normalise(prompt).split())
        closest = max(len(tokens & other) / len(tokens | other) for other in public_tokens)
        assert closest < 0.8, f"{prompt!r} is nearly a public prompt (token overlap {closest:.2f})"
