"""`benchmarks/ptx_sft_check.py`: supervised PTX steps alone, declines read on train prompts held out from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ptx_sft_check.py"


def test_main_trains_and_evaluates_the_tiny_model(module, tmp_path):
    output = tmp_path / "check.json"
    rows = module.main(
        ["--model", "tiny", "--ptx_prompts", "twins_unlikely", "--steps", "2", "--eval_steps", "0", "2",
         "--validation_share", "0.05", "--max_new_tokens", "4", "--alphas", "1", "0", "--output", str(output)]
    )  # fmt: skip
    assert [(row["step"], row["alpha"]) for row in rows] == [(0, 1), (0, 0), (2, 1), (2, 0)]
    # α = 0 reads the starting policy at every step: what step 0 read
    assert rows[3]["mean_decline_logprob"] == pytest.approx(rows[0]["mean_decline_logprob"], abs=1e-4)
    assert rows[3]["declined"] == rows[0]["declined"]
    for row in rows:
        assert set(row["declined"]) == {"harmful", "twin", "other", "harmful_sampled", "twin_sampled", "lookalike"}
        assert sum(asked for _, _, asked in row["lookalike_by_kind"].values()) == row["declined"]["lookalike"][1]
        assert [a["declined"] for a in row["answers"]["twin"]].count(True) == row["declined"]["twin"][0]
        assert all(0 <= declined <= total for declined, total in row["declined"].values())
        assert set(row["declined_read_past"]) == set(module.GROUPS) == set(row["repetitive"])
        assert all(0 <= repetitive <= total for repetitive, total in row["repetitive"].values())
        assert set(row["judged_unsafe"]) == {"harmful", "harmful_sampled"}
        assert all(0 <= unsafe <= total for unsafe, total in row["judged_unsafe"].values())
        assert all(0 <= declined <= total for declined, total in row["declined_read_past"].values())
        assert 0 <= row["auroc_harmful_vs_twin"] <= 1
    assert json.loads(output.read_text())["rows"][2]["step"] == 2
    assert rows[0]["learning_rate"] == rows[2]["learning_rate"] == 5e-4  # constant, as the demo trains
    with pytest.raises(SystemExit, match="eval_steps"):
        module.main(["--model", "tiny", "--steps", "2", "--eval_steps", "3"])
    with pytest.raises(SystemExit, match="lora_layers"):
        module.main(["--model", "tiny", "--steps", "2", "--eval_steps", "2", "--lora_layers", "0", "--alphas", "0.5"])


def test_markdown_shows_the_reading_past_the_apology_only_where_it_differs(module):
    declined = {
        "harmful": [9, 20],
        "twin": [4, 23],
        "other": [1, 10],
        "harmful_sampled": [5, 40],
        "twin_sampled": [3, 40],
        "lookalike": [2, 24],
    }
    row = {
        "step": 240,
        "declined": declined,
        "declined_read_past": {**declined, "twin": [2, 23]},  # only the twins read differently past the apology
        "judged_unsafe": {"harmful": [6, 20], "harmful_sampled": [30, 40]},
        "mean_decline_logprob": {
            "harmful": -1.0,
            "twin": -2.0,
            "other": -3.0,
            "harmful_sampled": -4.0,
            "twin_sampled": -5.0,
            "lookalike": -6.0,
        },
        "auroc_harmful_vs_twin": 0.8,
        "auroc_harmful_vs_harmless": 0.9,
        "lookalike_by_kind": {"history": [0, 0, 4], "safe_context": [2, 1, 4]},
    }
    lines = module.markdown([row], "twins_unlikely").splitlines()
    line = lines[lines.index("| step | α | history | safe_context |") - 2]
    assert line.startswith(
        "| 240 | 1 | 9 of 20 | 4 (2) of 23 | 1 of 10 | 5 of 40 | 3 of 40 | 2 of 24 "
        "| -1.00 / -2.00 / -3.00 / -4.00 / -5.00 / -6.00 |"
    )
    assert line.endswith("| 6 of 20 / 30 of 40 |")
    assert lines[-1] == "| 240 | 1 | 0 of 4 | 2 (1) of 4 |"  # per kind


def test_a_saved_adapter_is_read_again_without_training_and_only_on_its_own_split(module, tmp_path):
    common = ["--model", "tiny", "--ptx_prompts", "twins_unlikely", "--validation_share", "0.05",
              "--max_new_tokens", "4"]  # fmt: skip
    (trained,) = module.main([*common, "--steps", "2", "--eval_steps", "2", "--save_adapter", str(tmp_path / "a")])
    saved = json.loads((tmp_path / "a" / module.ADAPTER_ARGS_FILE).read_text())
    assert saved["steps"] == 2 and saved["seed"] == 0 and saved["ptx_prompts"] == "twins_unlikely"
    read, halved = module.main(
        [*common, "--adapter", str(tmp_path / "a"), "--steps", "0", "--eval_steps", "0", "--alphas", "1", "0.5"]
    )
    assert (read["step"], read["alpha"], halved["alpha"]) == (2, 1, 0.5)  # steps counted from the adapter's
    assert read["mean_decline_logprob"] == pytest.approx(trained["mean_decline_logprob"], abs=1e-4)
    assert read["declined"] == trained["declined"]
    with pytest.raises(SystemExit, match="trained on another split"):
        module.main([*common, "--adapter", str(tmp_path / "a"), "--steps", "0", "--eval_steps", "0", "--seed", "1"])
    with pytest.raises(SystemExit, match="--save_adapter saves a LoRA adapter"):  # refused before any training
        module.main([*common, "--steps", "2", "--eval_steps", "2", "--lora_layers", "0", "--save_adapter", "x"])
    with pytest.raises(SystemExit, match="use --steps 0"):
        module.main([*common, "--adapter", str(tmp_path / "a"), "--steps", "2", "--eval_steps", "0"])


def test_several_adapters_of_one_split_are_read_as_the_average_of_their_updates(module, tmp_path):
    """Seeds 0 and 1 on split 0: `--adapter a b` is θ_0 + ((θ_a − θ_0) + (θ_b − θ_0)) / 2, the seeds' soup."""
    from peft import PeftModel

    from trl_safe.interpolation import average_updates

    tiny = ["--model", "tiny", "--ptx_prompts", "twins_unlikely", "--validation_share", "0.05",
            "--max_new_tokens", "2"]  # fmt: skip
    adapters = [str(tmp_path / seed) for seed in ("0", "1")]
    for seed, adapter in enumerate(adapters):
        module.main([*tiny, "--steps", "2", "--eval_steps", "2", "--seed", str(seed), "--split_seed", "0",
                     "--save_adapter", adapter])  # fmt: skip
    saved = [json.loads(Path(adapter, module.ADAPTER_ARGS_FILE).read_text()) for adapter in adapters]
    assert [(s["seed"], s["split_seed"]) for s in saved] == [(0, 0), (1, 0)]
    reading = [*tiny, "--split_seed", "0", "--steps", "0", "--eval_steps", "0", "--adapter", *adapters]
    soup, steps, window = module.load_adapters(module.load_model("tiny")[0], module.make_parser().parse_args(reading))
    assert steps == 2 and window is None and not isinstance(soup, PeftModel)
    start = module.load_model("tiny")[0].state_dict()
    merged = [
        PeftModel.from_pretrained(module.load_model("tiny")[0], adapter).merge_and_unload().state_dict()
        for adapter in adapters
    ]
    expected = average_updates(start, merged)
    assert any(not torch.equal(expected[key], start[key]) for key in start)  # the adapters changed something
    for key, tensor in soup.state_dict().items():
        torch.testing.assert_close(tensor, expected[key], msg=key)
    (row,) = module.main(reading)
    assert row["step"] == 2
    with pytest.raises(SystemExit, match="at most one --adapter"):
        module.main([*reading, "--alphas", "0.5"])
    with pytest.raises(SystemExit, match="an average of adapters is no adapter"):
        module.main([*reading, "--save_adapter", str(tmp_path / "soup")])
    with pytest.raises(SystemExit, match="trained on another split"):  # without --split_seed: split 1, not 0
        module.main([*tiny, "--seed", "1", "--steps", "0", "--eval_steps", "0", "--adapter", adapters[1]])


def test_an_adapter_saved_before_split_seed_is_read_on_the_split_of_its_seed(module, tmp_path):
    tiny = ["--model", "tiny", "--ptx_prompts", "twins_unlikely", "--validation_share", "0.05",
            "--max_new_tokens", "2"]  # fmt: skip
    adapter = str(tmp_path / "a")
    module.main([*tiny, "--steps", "1", "--eval_steps", "1", "--save_adapter", adapter])
    path = Path(adapter, module.ADAPTER_ARGS_FILE)
    saved = json.loads(path.read_text())
    del saved["split_seed"]  # as saved before the option existed
    path.write_text(json.dumps(saved))
    (row,) = module.main([*tiny, "--steps", "0", "--eval_steps", "0", "--adapter", adapter])
    assert row["step"] == 1
    with pytest.raises(SystemExit, match="trained on another split"):
        module.main([*tiny, "--steps", "0", "--eval_steps", "0", "--split_seed", "3", "--adapter", adapter])


def test_the_learning_rate_follows_the_schedule_asked_for(module):
    """`warmup_stable_decay` with one decay step of three: the rate holds for two steps, then falls to 0."""
    rows = module.main(
        ["--model", "tiny", "--ptx_prompts", "twins_unlikely", "--steps", "3", "--eval_steps", "0", "2", "3",
         "--validation_share", "0.05", "--max_new_tokens", "2", "--learning_rate", "1e-3",
         "--lr_scheduler_type", "warmup_stable_decay", "--lr_scheduler_kwargs", '{"num_decay_steps": 1}']
    )  # fmt: skip
    assert [row["learning_rate"] for row in rows] == [1e-3, 1e-3, 0.0]
    with pytest.raises(SystemExit):  # argparse: not one of transformers' schedules
        module.make_parser().parse_args(["--lr_scheduler_type", "cosine_decay"])


def test_the_second_batch_of_look_alikes_is_read_as_one_more_group_only_where_it_is_not_trained_on(module, capsys):
    from trl_safe.demo import load_demo_lookalikes

    (row,) = module.main(
        ["--model", "tiny", "--ptx_prompts", "twins_unlikely", "--steps", "1", "--eval_steps", "1",
         "--validation_share", "0.05", "--max_new_tokens", "2", "--read_lookalikes_more"]
    )  # fmt: skip
    more = [answer["prompt"] for answer in row["answers"][module.MORE_GROUP]]
    assert more == list(load_demo_lookalikes("train_more")["prompt"]) and len(more) == 30
    assert row["declined_read_past"][module.MORE_GROUP][1] == 30
    assert "second batch of look-alikes" in capsys.readouterr().out  # its own line in the printed table
    # the selection rule counts only its own groups: the extra one changes no candidate's counts
    from trl_safe.sft_selection import Candidate

    without = {
        key: {g: v for g, v in row[key].items() if g != module.MORE_GROUP} for key in row if isinstance(row[key], dict)
    }
    assert Candidate.from_reading("x", row) == Candidate.from_reading("x", {**row, **without})
    with pytest.raises(SystemExit, match="trains on 30 of those look-alikes"):
        module.main(
            ["--model", "tiny", "--ptx_prompts", "wide_lookalikes_more", "--steps", "1", "--eval_steps", "1",
             "--read_lookalikes_more"]
        )  # fmt: skip


def test_data_seed_draws_the_row_order_and_seed_the_lora_initialisation(module, tmp_path, monkeypatch):
    """`--seed a --data_seed b`: the LoRA weights of seed a, the batches of seed b (crossed, to tell them apart)."""
    from safetensors.torch import load_file

    from trl_safe.ptx import PTXData

    batches: list[torch.Tensor] = []
    draw = PTXData.batch

    def recorded(self, *args, **kwargs):
        batch = draw(self, *args, **kwargs)
        batches.append(batch["input_ids"])
        return batch

    monkeypatch.setattr(PTXData, "batch", recorded)
    tiny = ["--model", "tiny", "--ptx_prompts", "twins_unlikely", "--validation_share", "0.05", "--max_new_tokens",
            "1", "--split_seed", "0", "--steps", "2", "--eval_steps", "2", "--learning_rate", "0"]  # fmt: skip
    runs = {}
    for seed, data_seed in ((0, None), (0, 1), (1, 0)):
        batches.clear()
        adapter = tmp_path / f"{seed}_{data_seed}"
        extra = [] if data_seed is None else ["--data_seed", str(data_seed)]
        module.main([*tiny, "--seed", str(seed), *extra, "--save_adapter", str(adapter)])
        saved = json.loads((adapter / module.ADAPTER_ARGS_FILE).read_text())
        assert (saved["seed"], saved["data_seed"]) == (seed, seed if data_seed is None else data_seed)
        runs[seed, data_seed] = (list(batches), load_file(adapter / "adapter_model.safetensors"))  # rate 0: the init
    (order_0, init_0), (order_1, init_0b), (order_0b, init_1) = runs.values()
    assert all(torch.equal(a, b) for a, b in zip(order_0, order_0b)) and len(order_0) == 2  # the order: --data_seed
    assert not all(torch.equal(a, b) for a, b in zip(order_0, order_1))
    assert all(torch.equal(init_0[key], init_0b[key]) for key in init_0)  # the initialisation: --seed
    assert not all(torch.equal(init_0[key], init_1[key]) for key in init_0 if "lora_A" in key)


def test_average_last_reads_the_final_weights_and_their_tail_average_from_one_trajectory(module, capsys, tmp_path):
    """Both policies of one trajectory are read, and with --save_adapter both saved to be read again."""
    tiny = ["--model", "tiny", "--ptx_prompts", "twins_unlikely", "--validation_share", "0.05", "--max_new_tokens",
            "2", "--learning_rate", "1e-2"]  # fmt: skip
    trained, saved = [*tiny, "--steps", "3", "--eval_steps", "3"], tmp_path / "a"
    final, averaged = module.main([*trained, "--average_last", "2", "--save_adapter", str(saved)])
    assert (final["step"], averaged["step"]) == (3, 3)
    assert "averaged_over" not in final and averaged["averaged_over"] == 2
    assert averaged["mean_decline_logprob"] != final["mean_decline_logprob"]  # the mean of steps 2 and 3
    assert "| 3 (mean of 2-3) | 1 |" in capsys.readouterr().out
    # the saved adapters read again: the final weights, and the averaged ones (their rows say so)
    averaged_dir = saved / module.AVERAGED_ADAPTER_DIR
    assert json.loads((averaged_dir / module.ADAPTER_ARGS_FILE).read_text())["averaged_over"] == 2
    reading = [*tiny, "--steps", "0", "--eval_steps", "0"]
    (final_again,) = module.main([*reading, "--adapter", str(saved)])
    (averaged_again,) = module.main([*reading, "--adapter", str(averaged_dir)])
    assert "averaged_over" not in final_again and averaged_again["averaged_over"] == 2
    for again, read in ((final_again, final), (averaged_again, averaged)):
        assert again["step"] == 3
        assert again["mean_decline_logprob"] == pytest.approx(read["mean_decline_logprob"], abs=1e-4)
    with pytest.raises(SystemExit, match="some adapters are averaged"):
        module.main([*reading, "--adapter", str(saved), str(averaged_dir)])
    # a window of one step is the final weights: the same reading
    final, last = module.main([*trained, "--average_last", "1"])
    assert last["mean_decline_logprob"] == pytest.approx(final["mean_decline_logprob"], abs=1e-6)
    assert last["declined"] == final["declined"]
    with pytest.raises(SystemExit, match="--average_last must be within"):
        module.main([*trained, "--average_last", "4"])
