import json
import logging
import re

import pytest
from datasets import Dataset, DatasetDict, IterableDataset
from trl.data_utils import is_conversational

from trl_safe import (
    DroppedRows,
    load_preference_data,
    to_harmlessness_preferences,
    to_helpfulness_preferences,
    to_prompts,
)


def pku_row(prompt="How do I bake bread?", safe=(True, False), better=1, safer=0, **extra):
    return {
        "prompt": prompt,
        "response_0": f"{prompt} answer zero",
        "response_1": f"{prompt} answer one",
        "is_response_0_safe": safe[0],
        "is_response_1_safe": safe[1],
        "better_response_id": better,
        "safer_response_id": safer,
        **extra,
    }


def contradictory_row(prompt="q"):
    """The safer response (0) is labelled unsafe while the other one is labelled safe."""
    return pku_row(prompt, safe=(False, True), safer=0)


@pytest.fixture
def rows():
    return [
        pku_row("p0", safe=(True, False), better=1, safer=0, prompt_source="x"),
        pku_row("p1", safe=(True, True), better=0, safer=1, prompt_source="y"),
        pku_row("p0", safe=(False, False), better=0, safer=1, prompt_source="z"),
    ]


# --- the three views -------------------------------------------------------------------------------------------------


def test_helpfulness_chosen_is_the_better_response(rows):
    out = to_helpfulness_preferences(Dataset.from_list(rows))
    assert out.column_names == ["prompt", "chosen", "rejected"]
    assert out[0] == {"prompt": "p0\n", "chosen": "p0 answer one", "rejected": "p0 answer zero"}
    assert out[1] == {"prompt": "p1\n", "chosen": "p1 answer zero", "rejected": "p1 answer one"}
    # The separator is configurable, the text otherwise kept as is.
    assert to_helpfulness_preferences(Dataset.from_list(rows), separator="")[0]["prompt"] == "p0"


def test_harmlessness_chosen_is_the_safer_response_with_its_labels(rows):
    out = to_harmlessness_preferences(Dataset.from_list(rows))
    assert out.column_names == ["prompt", "chosen", "rejected", "is_chosen_safe", "is_rejected_safe"]
    assert out[0] == {
        "prompt": "p0\n",
        "chosen": "p0 answer zero",
        "rejected": "p0 answer one",
        "is_chosen_safe": True,
        "is_rejected_safe": False,
    }
    assert (out[1]["chosen"], out[1]["is_chosen_safe"], out[1]["is_rejected_safe"]) == ("p1 answer one", True, True)
    assert (out[2]["chosen"], out[2]["is_chosen_safe"], out[2]["is_rejected_safe"]) == ("p0 answer one", False, False)


def test_helpfulness_ignores_safety_labels():
    # A contradictory safety annotation says nothing about helpfulness: that view keeps the row.
    out = to_helpfulness_preferences(Dataset.from_list([contradictory_row()]))
    assert len(out) == 1


def test_prompts_are_distinct_in_first_seen_order(rows, caplog):
    with caplog.at_level(logging.INFO, logger="trl_safe.data"):
        out = to_prompts(Dataset.from_list(rows))
    assert out["prompt"] == ["p0\n", "p1\n"]
    assert "2 distinct prompts in 3 rows" in caplog.text


def test_prompts_can_keep_their_repeats_to_weight_them(rows, caplog):
    """`deduplicate=False`: every row is a rollout prompt, so a prompt file weights its prompts by listing them."""
    with caplog.at_level(logging.INFO, logger="trl_safe.data"):
        out = to_prompts(Dataset.from_list(rows), deduplicate=False)
    assert out["prompt"] == [row["prompt"] + "\n" for row in rows] and len(set(out["prompt"])) == 2
    assert "2 distinct prompts in 3 rows (repeats kept" in caplog.text


def test_conversational_form_is_what_trl_recognises(rows):
    data = Dataset.from_list(rows)
    pair = to_harmlessness_preferences(data, conversational=True)[0]
    assert pair["prompt"] == [{"role": "user", "content": "p0"}]
    assert pair["chosen"] == [{"role": "assistant", "content": "p0 answer zero"}]
    assert pair["rejected"] == [{"role": "assistant", "content": "p0 answer one"}]
    assert is_conversational(pair)
    assert is_conversational(to_helpfulness_preferences(data, conversational=True)[0])
    prompts = to_prompts(data, conversational=True)
    assert prompts["prompt"] == [[{"role": "user", "content": "p0"}], [{"role": "user", "content": "p1"}]]
    assert is_conversational(prompts[0])
    assert not is_conversational(to_harmlessness_preferences(data)[0])


def test_dataset_dict_converts_every_split(rows):
    data = DatasetDict({"train": Dataset.from_list(rows), "test": Dataset.from_list(rows[:1])})
    out = to_harmlessness_preferences(data)
    assert isinstance(out, DatasetDict)
    assert {split: len(ds) for split, ds in out.items()} == {"train": 3, "test": 1}
    assert to_prompts(data)["test"]["prompt"] == ["p0\n"]
    bad = DatasetDict({"train": Dataset.from_list(rows), "test": Dataset.from_list([contradictory_row()])})
    with pytest.raises(ValueError, match="split 'test', row 0"):
        to_harmlessness_preferences(bad)


# --- streaming -------------------------------------------------------------------------------------------------------


def test_streaming_is_lazy_and_validates_each_row_as_it_streams(rows):
    stream = Dataset.from_list([*rows, pku_row(better=2)]).to_iterable_dataset()
    out = to_helpfulness_preferences(stream)  # nothing read yet, so the bad row cannot have been seen
    assert isinstance(out, IterableDataset)
    iterator = iter(out)
    assert [next(iterator)["chosen"] for _ in range(3)] == ["p0 answer one", "p1 answer zero", "p0 answer zero"]
    with pytest.raises(ValueError, match=r"row 3: 'better_response_id' must be 0 or 1, got 2"):
        next(iterator)


def test_streaming_with_unknown_columns_is_converted(rows):
    # A generator stream has no features until read: the conversion peeks at its first row for the columns.
    stream = IterableDataset.from_generator(lambda: iter(rows))
    assert stream.column_names is None
    out = list(to_harmlessness_preferences(stream, conversational=True))
    columns = ["chosen", "is_chosen_safe", "is_rejected_safe", "prompt", "rejected"]
    assert [sorted(pair) for pair in out] == [columns] * 3
    assert out == list(to_harmlessness_preferences(Dataset.from_list(rows), conversational=True))


def test_streaming_prompts_deduplicate_afresh_on_every_pass(rows):
    out = to_prompts(Dataset.from_list(rows).to_iterable_dataset())
    assert [row["prompt"] for row in out] == ["p0\n", "p1\n"]
    assert [row["prompt"] for row in out] == ["p0\n", "p1\n"]  # a second epoch sees every prompt again


# --- bad input -------------------------------------------------------------------------------------------------------


def test_missing_columns_are_named_with_the_columns_found(rows):
    data = Dataset.from_list(rows).remove_columns(["safer_response_id", "is_response_1_safe"])
    with pytest.raises(ValueError) as error:
        to_harmlessness_preferences(data)
    message = str(error.value)
    assert "missing column(s) ['is_response_1_safe', 'safer_response_id']" in message
    assert "found ['prompt', 'response_0', 'response_1', 'is_response_0_safe', 'better_response_id'" in message
    # The helpfulness view does not need the safety columns.
    assert len(to_helpfulness_preferences(data)) == 3
    with pytest.raises(ValueError, match=r"missing column\(s\) \['prompt'\]"):
        to_prompts(Dataset.from_list(rows).remove_columns("prompt"))


@pytest.mark.parametrize(
    ("convert", "field", "value", "expected"),
    [
        (to_helpfulness_preferences, "better_response_id", 2, "'better_response_id' must be 0 or 1, got 2 (int)"),
        (to_helpfulness_preferences, "response_0", None, "'response_0' must be a string, got None (NoneType)"),
        (to_harmlessness_preferences, "safer_response_id", True, "'safer_response_id' must be 0 or 1, got True"),
        (to_harmlessness_preferences, "is_response_0_safe", 1, "'is_response_0_safe' must be a boolean, got 1 (int)"),
        (to_harmlessness_preferences, "is_response_1_safe", "yes", "'is_response_1_safe' must be a boolean, got 'yes"),
        (to_prompts, "prompt", 7, "'prompt' must be a string, got 7 (int)"),
    ],
)
def test_bad_values_name_the_row_and_field(convert, field, value, expected):
    # Plain dict rows in a stream keep Python types exactly as given (Arrow would coerce a whole column).
    bad = {**pku_row(), field: value}
    stream = IterableDataset.from_generator(lambda: iter([pku_row(), pku_row("other"), bad]))
    with pytest.raises(ValueError, match=re.escape(f"split 'train', row 2: {expected}")):
        list(convert(stream))


def test_contradictory_pair_raises_naming_the_row_and_its_labels(rows):
    data = Dataset.from_list([*rows, contradictory_row()])
    with pytest.raises(ValueError) as error:
        to_harmlessness_preferences(data)
    assert (
        "row 3: contradictory safety labels: safer_response_id=0 but is_response_0_safe=False and "
        "is_response_1_safe=True" in str(error.value)
    )
    assert "on_contradiction='drop'" in str(error.value)
    with pytest.raises(ValueError, match="on_contradiction must be"):
        to_harmlessness_preferences(data, on_contradiction="ignore")


def test_contradictory_pairs_dropped_are_counted_logged_and_recorded(rows, caplog):
    data = Dataset.from_list([contradictory_row("a"), *rows, contradictory_row("b")])
    dropped = DroppedRows()
    with caplog.at_level(logging.WARNING, logger="trl_safe.data"):
        out = to_harmlessness_preferences(data, on_contradiction="drop", dropped=dropped)
    assert len(out) == 3 and out["prompt"] == ["p0\n", "p1\n", "p0\n"]
    assert dropped.indices == {"dataset": [0, 4]} and dropped.count == 2
    assert "Dropped 2 of 5 rows of split 'dataset' with contradictory safety labels" in caplog.text


def test_streaming_contradictions_are_recorded_as_they_stream(rows, caplog):
    stream = Dataset.from_list([*rows, contradictory_row()]).to_iterable_dataset()
    dropped = DroppedRows()
    with caplog.at_level(logging.WARNING, logger="trl_safe.data"):
        out = to_harmlessness_preferences(stream, on_contradiction="drop", dropped=dropped)
        assert dropped.count == 0  # lazy: nothing read yet
        assert len(list(out)) == 3
        assert len(list(out)) == 3  # a second pass records the same row once
    assert dropped.indices == {"dataset": [3]}
    assert "Dropping split 'dataset', row 3: contradictory safety labels" in caplog.text


# --- loading ---------------------------------------------------------------------------------------------------------


def test_load_preference_data_reads_json_jsonl_and_csv(tmp_path, rows):
    plain = [{k: v for k, v in row.items() if k != "prompt_source"} for row in rows]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in plain))
    (tmp_path / "pairs.json").write_text(json.dumps(plain))
    Dataset.from_list(plain).to_csv(tmp_path / "pairs.csv", index=False)
    for name in ("pairs.jsonl", "pairs.json", "pairs.csv"):
        data = load_preference_data(tmp_path / name, split="train")
        assert data.to_list() == plain, name  # booleans and ids survive the CSV round trip
        assert to_harmlessness_preferences(data)["is_chosen_safe"] == [True, True, False]
    assert isinstance(load_preference_data(str(tmp_path / "pairs.jsonl")), DatasetDict)
    assert isinstance(load_preference_data(tmp_path / "pairs.jsonl", split="train", streaming=True), IterableDataset)
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_preference_data(tmp_path / "missing.jsonl")


# --- the real PKU-SafeRLHF sample ------------------------------------------------------------------------------------


def test_pku_saferlhf_sample(shared_data):
    path = shared_data / "pku_saferlhf_test_sample.jsonl"
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    # Counted independently of trl_safe, straight from the file.
    contradictions = [
        i
        for i, r in enumerate(raw)
        if not r[f"is_response_{r['safer_response_id']}_safe"] and r[f"is_response_{1 - r['safer_response_id']}_safe"]
    ]
    tension = [i for i, r in enumerate(raw) if r["better_response_id"] != r["safer_response_id"]]
    assert (len(raw), len(contradictions), len(tension)) == (74, 0, 10)  # the figures of the data README

    data = load_preference_data(path, split="train")
    dropped = DroppedRows()
    harmless = to_harmlessness_preferences(data, on_contradiction="drop", dropped=dropped)
    helpful = to_helpfulness_preferences(data)
    assert dropped.count == len(contradictions) == 0 and len(harmless) == len(helpful) == 74
    # The two views disagree on the chosen response exactly where better != safer.
    assert [i for i in range(74) if harmless[i]["chosen"] != helpful[i]["chosen"]] == tension
    for r, pair in zip(raw, harmless):
        safer = r["safer_response_id"]
        assert pair["chosen"] == r[f"response_{safer}"] and pair["rejected"] == r[f"response_{1 - safer}"]
        assert (pair["is_chosen_safe"], pair["is_rejected_safe"]) == (
            r[f"is_response_{safer}_safe"],
            r[f"is_response_{1 - safer}_safe"],
        )
    # Both safe 37, both unsafe 27, one of each 10 (data README); chosen is never the unsafe one of a mixed pair.
    mix = [(p["is_chosen_safe"], p["is_rejected_safe"]) for p in harmless]
    assert (mix.count((True, True)), mix.count((False, False)), mix.count((True, False))) == (37, 27, 10)
    assert len(to_prompts(data)) == len({r["prompt"] for r in raw}) == 74
    streamed = to_harmlessness_preferences(load_preference_data(path, split="train", streaming=True))
    assert list(streamed) == harmless.to_list()


def test_load_prompt_dataset_gives_distinct_prompts_and_respects_max_prompts(tmp_path):
    from trl_safe.data import load_prompt_dataset

    path = tmp_path / "rows.jsonl"
    rows = [{"prompt": p} for p in ["How are you?", "Why?", "How are you?", "Where?"]]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    prompts = load_prompt_dataset(path)
    assert prompts["prompt"] == ["How are you?\n", "Why?\n", "Where?\n"]
    assert load_prompt_dataset(path, max_prompts=2)["prompt"] == ["How are you?\n", "Why?\n"]
    conversational = load_prompt_dataset(path, conversational=True, max_prompts=1)
    assert conversational["prompt"] == [[{"role": "user", "content": "How are you?"}]]


def test_prompt_script_arguments_refuse_streaming():
    from trl_safe.data import PromptScriptArguments

    with pytest.raises(ValueError, match="map-style"):
        PromptScriptArguments(dataset_streaming=True)
    assert PromptScriptArguments().dataset_name == "PKU-Alignment/PKU-SafeRLHF"
