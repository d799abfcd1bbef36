"""Which SFT candidate the selection rule keeps, from saved validation readings.

The pipeline's `--sft_candidates` trains several SFT policies and keeps one by `trl_safe.sft_selection.
select_candidate`; `benchmarks/ptx_sft_check.py` trains the same kind of candidate with `--seed` (the split fixed
by `--split_seed`) and saves its reading with `--output`. This reads such files, a check's JSON (its last row at
α = 1) or a pipeline candidate's `validation_reading.json`, and prints the rule's table and choice, so that the
choice of a draw of check runs is made by the same code as the pipeline's, before any held-out prompt is read:

    python benchmarks/select_sft_candidate.py seed0=check_0.json seed1=check_1.json seed2=check_2.json

`--output` writes `selection.json` as the pipeline does. Returns the chosen name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trl_safe.sft_selection import Candidate, select_candidate, selection_table, write_selection


def load_reading(path: Path) -> dict[str, Any]:
    """A validation reading: a pipeline candidate's file, or the last α = 1 row of a `ptx_sft_check.py --output`."""
    data = json.loads(path.read_text())
    if "rows" not in data:
        return data
    rows = [row for row in data["rows"] if row.get("alpha", 1.0) == 1.0]
    if not rows:
        raise ValueError(f"{path} has no reading at α = 1.")
    return rows[-1]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("readings", nargs="+", help="name=path of each candidate's reading, in seed order.")
    parser.add_argument("--output", type=Path, default=None, help="Write the selection (as selection.json) here.")
    return parser


def main(argv: list[str] | None = None) -> str:
    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    candidates = []
    for spec in args.readings:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"{spec!r}: give each reading as name=path.")
        candidates.append(Candidate.from_reading(name, load_reading(Path(path))))
    chosen, why = select_candidate(candidates)
    print("\n".join([*selection_table(candidates, chosen), "", f"Chosen: {why}."]))
    if args.output is not None:
        write_selection(args.output, candidates, chosen, why)
    return chosen.name


if __name__ == "__main__":
    main()
