"""Fuzz: randomly corrupted PKU-style rows through the adapters and `CostTrainer` (issue 13, "done when").

Every trial either trains with exactly the valid rows (the dropped ones counted and logged) or stops with a
`ValueError` that names the first bad row (or, for a column absent from the first row, the missing column). Anything
else (a `TypeError` from deep inside, a `StopIteration`, a silent `bool("false")`) fails the test. The expected
outcome comes from a small oracle written independently of the code under test, applied to the values the adapter
actually receives (Arrow may coerce a column when the rows become a `Dataset`).
"""

import logging
import math
import random
from numbers import Integral, Real

import pytest
from datasets import Dataset, IterableDataset

from trl_safe import CostConfig, CostTrainer, DroppedRows, to_harmlessness_preferences
from trl_safe.data import HARMLESSNESS_COLUMNS
from trl_safe.testing_utils import make_tiny_scorer

TEXT_FIELDS = ("prompt", "response_0", "response_1")
CORRUPT_VALUES = [None, 3, 2.5, "", "   ", "false", "no", "1", math.nan, True, False, 0, 1, 2, -1, ["x"], {"a": 1}]


def valid_row(i: int, rng: random.Random) -> dict:
    safe_0, safe_1 = rng.random() < 0.5, rng.random() < 0.5
    # A consistent row: the safer response is never labelled unsafe while the other is labelled safe.
    safer = 0 if safe_0 or not safe_1 else 1
    return {
        "prompt": f"Question number {i}?",
        "response_0": f"First answer {i}.",
        "response_1": f"Second answer {i}!",
        "is_response_0_safe": safe_0,
        "is_response_1_safe": safe_1,
        "better_response_id": rng.randint(0, 1),
        "safer_response_id": safer,
    }


def corrupt(rows: list[dict], rng: random.Random) -> list[dict]:
    rows = [dict(row) for row in rows]
    for row in rows:
        roll = rng.random()
        if roll < 0.15:
            row[rng.choice(HARMLESSNESS_COLUMNS)] = rng.choice(CORRUPT_VALUES)
        elif roll < 0.2:
            del row[rng.choice(HARMLESSNESS_COLUMNS)]
        elif roll < 0.35:  # contradictory labels: the safer response unsafe, the other safe
            safer = row["safer_response_id"]
            row[f"is_response_{safer}_safe"], row[f"is_response_{1 - safer}_safe"] = False, True
    return rows


# --- the oracle ----------------------------------------------------------------------------------------------------


def row_problem(row: dict) -> str | None:
    """'invalid', 'contradiction' or None for one row, by the documented rules of `to_harmlessness_preferences`."""
    for name in HARMLESSNESS_COLUMNS:
        if name not in row:
            return "invalid"
        value = row[name]
        if name in TEXT_FIELDS and (not isinstance(value, str) or not value.strip()):
            return "invalid"
        if name == "safer_response_id" and (
            isinstance(value, bool) or not isinstance(value, Real) or value not in (0, 1)
        ):
            return "invalid"
        if name.startswith("is_response_") and not isinstance(value, bool):
            return "invalid"
    safer = int(row["safer_response_id"])
    if not row[f"is_response_{safer}_safe"] and row[f"is_response_{1 - safer}_safe"]:
        return "contradiction"
    return None


def expected_outcome(rows: list[dict], columns: list[str]) -> tuple[str, object]:
    """('missing', None), ('error', first bad row), ('all_dropped', n) or ('ok', (kept indices, dropped indices))."""
    if any(name not in columns for name in HARMLESSNESS_COLUMNS):
        return "missing", None
    problems = [row_problem(row) for row in rows]
    if "invalid" in problems:
        return "error", problems.index("invalid")
    dropped = [i for i, p in enumerate(problems) if p == "contradiction"]
    if len(dropped) == len(rows):
        return "all_dropped", len(rows)
    return "ok", ([i for i, p in enumerate(problems) if p is None], dropped)


# --- the fuzz ------------------------------------------------------------------------------------------------------


def test_fuzz_adapter_stream_and_in_memory(caplog):
    rng = random.Random(0)
    outcomes = set()
    for _ in range(48):
        rows = corrupt([valid_row(i, rng) for i in range(rng.randint(1, 6))], rng)

        # A stream keeps the Python values exactly as given; its columns are those of the first row.
        kind, detail = expected_outcome(rows, list(rows[0]))
        stream = IterableDataset.from_generator(lambda rows=rows: iter(rows))
        dropped = DroppedRows()
        if kind == "missing":
            with pytest.raises(ValueError, match=r"missing column\(s\)"):
                list(to_harmlessness_preferences(stream, on_contradiction="drop", dropped=dropped))
        elif kind == "error":
            with pytest.raises(ValueError, match=f"row {detail}: "):
                list(to_harmlessness_preferences(stream, on_contradiction="drop", dropped=dropped))
        else:  # a stream cannot know up front that it will drop everything: it yields nothing
            out = list(to_harmlessness_preferences(stream, on_contradiction="drop", dropped=dropped))
            kept = detail[0] if kind == "ok" else []
            assert [o["prompt"] for o in out] == [rows[i]["prompt"] + "\n" for i in kept]
            assert dropped.count == len(rows) - len(kept)

        # In memory: Arrow may refuse mixed types (that is the `datasets` library's error, before ours) or coerce.
        try:
            data = Dataset.from_list(rows)
        except (TypeError, ValueError, OverflowError) as error:  # pyarrow's errors subclass these
            outcomes.add(f"arrow refused: {type(error).__name__}")
            continue
        seen = data.to_list()
        kind, detail = expected_outcome(seen, data.column_names)
        outcomes.add(kind)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="trl_safe.data"):
            if kind == "missing":
                with pytest.raises(ValueError, match=r"missing column\(s\)"):
                    to_harmlessness_preferences(data, on_contradiction="drop")
            elif kind == "error":
                with pytest.raises(ValueError, match=f"split 'dataset', row {detail}: "):
                    to_harmlessness_preferences(data, on_contradiction="drop")
            elif kind == "all_dropped":
                with pytest.raises(ValueError, match=f"all {detail} rows have contradictory safety labels"):
                    to_harmlessness_preferences(data, on_contradiction="drop")
            else:
                kept, dropped_rows = detail
                out = to_harmlessness_preferences(data, on_contradiction="drop")
                assert out["prompt"] == [seen[i]["prompt"] + "\n" for i in kept]
                if dropped_rows:
                    assert f"Dropped {len(dropped_rows)} of {len(seen)} rows" in caplog.text
                    assert f"rows {dropped_rows}" in caplog.text
    # The corruption reaches the different outcomes (and Arrow's own refusals, which are not ours to handle).
    assert {"error", "ok", "missing", "all_dropped"} <= outcomes, outcomes


COST_CORRUPT_VALUES = [None, "", "  ", "false", "no", 0, 1, 2, 0.0, math.nan, True, False, ["x"]]


def cost_row_problem(row: dict) -> bool:
    """Whether `CostTrainer` must refuse the row (labels not booleans or 0/1, empty or non-text responses,
    contradictory labels)."""
    labels = [row["is_chosen_safe"], row["is_rejected_safe"]]
    for label in labels:
        if not (isinstance(label, bool) or (isinstance(label, Integral) and label in (0, 1))):
            return True
    if not isinstance(row["prompt"], str):
        return True
    for name in ("chosen", "rejected"):
        if not isinstance(row[name], str) or not row[name].strip():
            return True
    chosen_safe, rejected_safe = bool(labels[0]), bool(labels[1])
    if not chosen_safe and rejected_safe:
        return True
    return row["chosen"] == row["rejected"] and chosen_safe != rejected_safe


def test_fuzz_cost_trainer_on_corrupted_pairs(tiny_tokenizer, tmp_path):
    rng = random.Random(0)
    trained = refused = 0
    for trial in range(14):
        rows = [
            dict(prompt=f"Q{i}", chosen=f"Safe answer {i}", rejected=f"Bad {i}", is_chosen_safe=True,
                 is_rejected_safe=rng.random() < 0.5)
            for i in range(rng.randint(2, 4))
        ]  # fmt: skip
        for row in rows:
            roll = rng.random()
            if roll < 0.3:
                name = rng.choice(["prompt", "chosen", "rejected", "is_chosen_safe", "is_rejected_safe"])
                row[name] = rng.choice(COST_CORRUPT_VALUES)
            elif roll < 0.4:
                row["rejected"], row["is_chosen_safe"], row["is_rejected_safe"] = row["chosen"], True, False
        try:
            data = Dataset.from_list(rows)
        except (TypeError, ValueError, OverflowError):
            continue  # Arrow refused the mixed column: the user cannot build this data set either
        seen = data.to_list()
        bad = [i for i, row in enumerate(seen) if cost_row_problem(row)]
        config = CostConfig(
            output_dir=str(tmp_path / f"t{trial}"),
            max_steps=1,
            per_device_train_batch_size=2,
            report_to="none",
            save_strategy="no",
            activation_checkpointing=False,
            disable_tqdm=True,
        )
        model = make_tiny_scorer(tiny_tokenizer)
        if bad:
            with pytest.raises(ValueError, match=f"train dataset, row {bad[0]}: "):
                CostTrainer(model, config, train_dataset=data, processing_class=tiny_tokenizer)
            refused += 1
            continue
        trainer = CostTrainer(model, config, train_dataset=data, processing_class=tiny_tokenizer)
        assert len(trainer.train_dataset) == len(seen)
        if trained < 2:  # training itself is covered elsewhere; two runs show the checked data trains
            trainer.train()
            assert trainer.state.global_step == 1
        trained += 1
    assert trained >= 1 and refused >= 3, (trained, refused)
