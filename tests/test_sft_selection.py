"""`trl_safe.sft_selection`: the validation split of the demo's train prompts, its reading and the rule that picks an
SFT policy among seeds."""

from __future__ import annotations

import collections
import json

import pytest

from trl_safe.demo import load_demo_prompts, load_demo_ptx_dataset, load_demo_twins
from trl_safe.sft_selection import (
    HARMFUL_GROUPS,
    VALIDATION_GROUPS,
    Candidate,
    read_validation,
    select_candidate,
    select_checkpoint,
    selection_table,
    split_validation,
    write_selection,
)
from trl_safe.testing_utils import make_tiny_causal_lm, make_tiny_chat_tokenizer


@pytest.mark.parametrize("ptx_prompts", ["twins_unlikely", "wide_twins", "wide_lookalikes"])
def test_validation_prompts_are_train_prompts_removed_from_every_ptx_row(ptx_prompts):
    rows = list(load_demo_ptx_dataset("train", ptx_prompts))
    split = split_validation(rows, share=0.3, seed=0)
    held = {prompt for prompts in split.validation.values() for prompt in prompts}
    assert not held & {row["prompt"][0]["content"] for row in split.train_rows}
    assert len(split.validation["harmful"]) == len(split.validation["twin"]) == round(0.3 * 77)
    assert len(split.validation["harmful_sampled"]) == round(0.3 * 135)
    # each held-out sampled harmful prompt takes its look-alike twin along (one twin each)
    twins = load_demo_twins("train", pairs="sampled")
    twin_of = dict(zip(twins["prompt"], twins["twin_of"]))
    assert sorted(twin_of[t] for t in split.validation["twin_sampled"]) == sorted(split.validation["harmful_sampled"])
    # half the written look-alikes of each kind, with their kind
    assert len(split.validation["lookalike"]) == 24 and set(split.kinds) == set(split.validation["lookalike"])
    assert sorted(collections.Counter(split.kinds.values()).values()) == [4] * 6
    # every removed row is about a held-out prompt, and no held-out prompt is an evaluation prompt
    assert len(rows) - len(split.train_rows) == sum(row["prompt"][0]["content"] in held for row in rows)
    assert not held & set(load_demo_prompts("test", "combined")["prompt"])
    assert split == split_validation(rows, share=0.3, seed=0)  # seeded
    with pytest.raises(ValueError, match="validation_share"):
        split_validation(rows, share=1.0, seed=0)
    with pytest.raises(ValueError, match="lookalike_share"):
        split_validation(rows, share=0.3, seed=0, lookalike_share=0.0)


def candidate(name, harmful_declined=45, harmless_declined=20, compliant=12, harmful=63, harmless=137):
    return Candidate(name, harmful_declined, harmful, harmless_declined, harmless, compliant)


def test_the_rule_keeps_the_fewest_harmless_declines_among_the_safe_enough():
    # draw 0 of docs/demo_outcome.md: seeds 0, 1, 2 on split 0
    seeds = [candidate("seed0", 43, 14, 16), candidate("seed1", 48, 31, 12), candidate("seed2", 46, 29, 13)]
    chosen, why = select_candidate(seeds)
    assert chosen.name == "seed0" and "14 of 137" in why
    # the safety floor: a third of the harmful validation prompts answered compliantly (21 of 63) passes, 22 not
    assert candidate("a", compliant=21).safe_enough and not candidate("b", compliant=22).safe_enough
    unsafe_but_selective = candidate("few_declines", harmless_declined=2, compliant=30)
    assert select_candidate([unsafe_but_selective, *seeds])[0].name == "seed0"
    # ties: fewer compliant answers, then the first
    tied = [candidate("x", harmless_declined=5, compliant=14), candidate("y", harmless_declined=5, compliant=10)]
    assert select_candidate(tied)[0].name == "y"
    assert select_candidate([candidate("p"), candidate("q")])[0].name == "p"


def test_rl_checkpoints_tie_to_the_later_step():
    """`select_checkpoint` (`--rl_checkpoint_every`): the SFT seeds' rule, a tie going to the later step."""
    steps = [candidate("step_12", harmless_declined=25), candidate("step_24"), candidate("step_36")]
    chosen, why = select_checkpoint(steps)  # step_24 and step_36 tie on 20 harmless declines
    assert chosen.name == "step_36" and "20 of 137" in why
    assert select_candidate(steps)[0].name == "step_24"  # the SFT seeds' rule: the first
    steps.append(candidate("step_48", harmless_declined=5, compliant=25))  # fewer declines, not safe enough
    assert select_checkpoint(steps)[0].name == "step_36"
    steps.append(candidate("step_60", harmless_declined=19))
    assert select_checkpoint(steps)[0].name == "step_60"


def test_when_no_candidate_is_safe_enough_the_safest_is_kept_and_said():
    chosen, why = select_candidate([candidate("a", compliant=40, harmless_declined=1), candidate("b", compliant=30)])
    assert chosen.name == "b" and "no candidate" in why
    with pytest.raises(ValueError, match="at least one"):
        select_candidate([])


def test_validation_reading_counts_what_it_keeps_and_feeds_the_rule(tmp_path):
    tokenizer = make_tiny_chat_tokenizer("smollm2")
    model = make_tiny_causal_lm(tokenizer, seed=0)
    model.train()
    validation = {group: [f"{group} prompt {i}?" for i in range(2 + (group in HARMFUL_GROUPS))] for group in
                  VALIDATION_GROUPS}  # fmt: skip
    reading = read_validation(model, tokenizer, validation, max_new_tokens=4)
    assert model.training  # left as it was
    for group, prompts in validation.items():
        answers = reading["answers"][group]
        assert [a["prompt"] for a in answers] == prompts
        assert reading["declined"][group] == [sum(a["declined"] for a in answers), len(prompts)]
        assert reading["declined_read_past"][group] == [sum(a["declined_read_past"] for a in answers), len(prompts)]
        assert reading["repetitive"][group][1] == len(prompts)
    assert set(reading["judged_unsafe"]) == set(HARMFUL_GROUPS)
    chosen = Candidate.from_reading("seed0", reading)
    assert (chosen.harmful, chosen.harmless) == (6, 8)
    assert chosen.judged_compliant == sum(reading["judged_unsafe"][group][0] for group in HARMFUL_GROUPS)
    with pytest.raises(ValueError, match="no group"):
        Candidate.from_reading("broken", {"declined_read_past": {}, "judged_unsafe": {}})
    write_selection(tmp_path / "selection.json", [chosen], chosen, "the only one")
    saved = json.loads((tmp_path / "selection.json").read_text())
    assert saved["chosen"] == "seed0" and saved["judge_version"] == 2
    assert selection_table([chosen], chosen)[-1].endswith("| yes |")
    # A reading saved before the judge's second version (no `judge_version`) counted with the first: a resumed run
    # that mixes it with new readings would compare two judges' counts, so recording the choice refuses.
    older = Candidate.from_reading("seed1", {k: v for k, v in reading.items() if k != "judge_version"})
    assert (chosen.judge_version, older.judge_version) == (2, 1)
    with pytest.raises(ValueError, match=r"judge versions \[1, 2\]: delete the older validation_reading.json"):
        write_selection(tmp_path / "selection.json", [chosen, older], chosen, "mixed")
