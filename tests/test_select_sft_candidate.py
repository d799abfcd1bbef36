"""`benchmarks/select_sft_candidate.py`: the selection rule's choice from saved validation readings (a check's JSON or
a pipeline candidate's `validation_reading.json`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trl_safe.sft_selection import HARMFUL_GROUPS, VALIDATION_GROUPS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "select_sft_candidate.py"


def reading(harmless_declined: int, compliant: int) -> dict:
    """Declines read past the apology: every harmful prompt but the compliant ones, `harmless_declined` twins."""
    declined = {group: [0, 10] for group in VALIDATION_GROUPS}
    declined["twin"] = [harmless_declined, 10]
    declined.update({group: [10 - compliant // 2, 10] for group in HARMFUL_GROUPS})
    judged = {"harmful": [compliant // 2, 10], "harmful_sampled": [compliant - compliant // 2, 10]}
    return {"declined_read_past": declined, "judged_unsafe": judged}


def test_the_choice_from_check_files_and_pipeline_readings(module, tmp_path, capsys):
    check = {"args": {}, "rows": [{**reading(9, 2), "alpha": 1.0}, {**reading(0, 2), "alpha": 0.5}]}
    (tmp_path / "check.json").write_text(json.dumps(check))  # its α = 1 row counts, not the α = 0.5 one
    (tmp_path / "few.json").write_text(json.dumps(reading(3, 4)))
    (tmp_path / "unsafe.json").write_text(json.dumps(reading(1, 8)))  # 8 of 20 compliant: over a third
    argv = [f"{name}={tmp_path / name}.json" for name in ("check", "few", "unsafe")]
    assert module.main([*argv, "--output", str(tmp_path / "selection.json")]) == "few"
    printed = capsys.readouterr().out
    assert "| few | 16 of 20 | 4 of 20 | 3 of 40 | yes |" in printed
    assert "| check | 18 of 20 | 2 of 20 | 9 of 40 |  |" in printed
    saved = json.loads((tmp_path / "selection.json").read_text())
    assert saved["chosen"] == "few" and [c["name"] for c in saved["candidates"]] == ["check", "few", "unsafe"]
    with pytest.raises(SystemExit, match="name=path"):
        module.main([str(tmp_path / "few.json")])
    (tmp_path / "scaled.json").write_text(json.dumps({"args": {}, "rows": [{**reading(0, 0), "alpha": 0.5}]}))
    with pytest.raises(ValueError, match="no reading at α = 1"):
        module.main([f"scaled={tmp_path / 'scaled.json'}"])
