"""Build the trl-safe demo preference data from the content authored beside this file.

    python data/demo/build_demo_data.py                      # rewrites trl_safe/resources/demo/{train,test}.jsonl
    python data/demo/build_demo_data.py --output_dir /tmp/demo

The content is data, not code: `harmful.yaml` (harmful requests per category), `lookalikes.yaml` (benign prompts that
look edgy), `benign.yaml` (plain benign prompts) and `templates.yaml` (the response templates). This script only
combines them, seeded, into PKU-SafeRLHF rows. It lives outside the package: the wheel ships the generated JSONL, not
its source. Everything here was written for trl-safe (see docs/demo_data.md; licence CC0-1.0). The output is
deterministic: `tests/test_demo.py` rebuilds it and checks that the shipped files match, so edit the YAML, never the
JSONL.

What the data teaches (PKU-SafeRLHF schema, one row = one prompt and two responses):

- Harmful requests, three rows each. (1) "helpful vs harmless": a response that goes along with the request is the
  *more helpful* one (`better_response_id`) and is unsafe; a refusal (with or without a safe alternative) is the
  *safer* one (`safer_response_id`). This is the tension Safe RLHF resolves with a cost constraint. (2) a refusal with
  a safe alternative against a curt refusal: both safe, the first more helpful.
- Benign prompts that merely look edgy (in the spirit of XSTest: "How do I kill a Python process?"), two rows each:
  the real answer against an over-refusal, and against a low-effort reply. Both responses safe; refusing is worse.
- Plain benign prompts, one row each: the real answer against a low-effort reply.

Whenever both responses are safe, `safer_response_id` equals `better_response_id`: such a pair carries no
harmlessness preference, and pointing the cost model at the refusal would teach it that refusing is safer than
helping (over-refusal).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import yaml

SEED = 20240501
TEST_FRACTION = 0.2
SOURCE_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUT_DIR = SOURCE_DIR.parents[1] / "trl_safe" / "resources" / "demo"


def load_content(source_dir: Path = SOURCE_DIR) -> dict:
    """The authored content: `harmful`, `lookalikes`, `benign` and the templates, read from the YAML files."""
    content = {}
    for name in ("harmful", "lookalikes", "benign", "templates"):
        path = Path(source_dir) / f"{name}.yaml"
        content[name] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return content


def _lower_first(text: str) -> str:
    return text[0].lower() + text[1:]


def _row(
    rng: random.Random,
    prompt: str,
    category: str,
    prompt_label: str,
    pair_type: str,
    better: tuple[str, bool],
    worse: tuple[str, bool],
    safer_is_better: bool,
) -> dict:
    """One PKU-SafeRLHF row; the two responses are put in a random order."""
    flip = rng.random() < 0.5
    (r0, safe0), (r1, safe1) = (worse, better) if flip else (better, worse)
    better_id = 1 if flip else 0
    return {
        "prompt": prompt,
        "response_0": r0,
        "response_1": r1,
        "is_response_0_safe": safe0,
        "is_response_1_safe": safe1,
        "better_response_id": better_id,
        "safer_response_id": better_id if safer_is_better else 1 - better_id,
        "category": category,
        "prompt_label": prompt_label,
        "pair_type": pair_type,
    }


def present(rng: random.Random, templates: dict, answer: str) -> str:
    """A helpful answer as written (half the time), after an opener, or as numbered steps (one per sentence).

    Openers and numbered steps occur in compliant (unsafe) answers too, so neither is a cue of harm."""
    style = rng.choice(["plain", "plain", "opener", "steps"])
    if style == "opener":
        return rng.choice(templates["openers"]) + answer
    if style == "steps":
        sentences = re.split(r"(?<=[.!?]) (?=[A-Z])", answer)
        if len(sentences) > 1:
            steps = "\n".join(f"{number}. {sentence}" for number, sentence in enumerate(sentences, start=1))
            return f"Here's a step-by-step guide:\n\n{steps}"
    return answer


def harmful_rows(rng: random.Random, templates: dict, category: str, spec: dict, request: dict) -> list[dict]:
    prompt, gist, redirect = request["prompt"], request["gist"], request["redirect"]
    short = rng.choice(templates["generic_compliance"] + spec["compliance"]).format(gist=gist)
    structured = rng.choice(templates["structured_compliance"]).format(gist=gist)
    refuse = rng.choice(templates["helpful_refusals"]).format(
        gist=gist, reason=spec["reason"], redirect=redirect, redirect_lower=_lower_first(redirect)
    )
    curt = rng.choice(templates["curt_refusals"])
    return [
        # The tension: going along is more helpful and unsafe; refusing (with or without an alternative) is safer.
        _row(rng, prompt, category, "unsafe", "helpful_vs_harmless", (short, False), (refuse, True), False),
        _row(rng, prompt, category, "unsafe", "helpful_vs_harmless", (structured, False), (curt, True), False),
        _row(rng, prompt, category, "unsafe", "redirect_vs_curt_refusal", (refuse, True), (curt, True), True),
    ]


def lookalike_rows(rng: random.Random, templates: dict, entry: dict) -> list[dict]:
    prompt = entry["prompt"]
    answer = present(rng, templates, entry["answer"])
    refusal = rng.choice(templates["over_refusals"]).format(topic=entry["topic"])
    low_effort = rng.choice(templates["low_effort"])
    category = "benign_lookalike"
    return [
        _row(rng, prompt, category, "safe", "helpful_vs_over_refusal", (answer, True), (refusal, True), True),
        _row(rng, prompt, category, "safe", "helpful_vs_low_effort", (answer, True), (low_effort, True), True),
    ]


def benign_rows(rng: random.Random, templates: dict, entry: dict) -> list[dict]:
    answer = present(rng, templates, entry["answer"])
    low_effort = rng.choice(templates["low_effort"])
    pair = ((answer, True), (low_effort, True))
    return [_row(rng, entry["prompt"], "benign", "safe", "helpful_vs_low_effort", *pair, True)]


def _split(items: list, rng: random.Random) -> tuple[list, list]:
    """Hold out `TEST_FRACTION` of a group's prompts (at least one), chosen at random."""
    order = list(range(len(items)))
    rng.shuffle(order)
    n_test = max(1, round(TEST_FRACTION * len(items)))
    test = set(order[:n_test])
    return [x for i, x in enumerate(items) if i not in test], [x for i, x in enumerate(items) if i in test]


def build(content: dict | None = None) -> dict[str, list[dict]]:
    """The rows of each split. Prompts are split per category, so both splits cover every category."""
    content = load_content() if content is None else content
    templates = content["templates"]
    rng = random.Random(SEED)
    splits: dict[str, list[dict]] = {"train": [], "test": []}
    for category, spec in content["harmful"].items():
        for split, requests in zip(("train", "test"), _split(spec["requests"], rng)):
            for request in requests:
                splits[split] += harmful_rows(rng, templates, category, spec, request)
    for split, entries in zip(("train", "test"), _split(content["lookalikes"], rng)):
        for entry in entries:
            splits[split] += lookalike_rows(rng, templates, entry)
    for split, entries in zip(("train", "test"), _split(content["benign"], rng)):
        for entry in entries:
            splits[split] += benign_rows(rng, templates, entry)
    for rows in splits.values():
        rng.shuffle(rows)
    return splits


def to_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source_dir", type=Path, default=SOURCE_DIR, help="Folder of the YAML content.")
    parser.add_argument(
        "--output_dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="Where train.jsonl and test.jsonl are written."
    )
    return parser


def main(argv: list[str] | None = None) -> dict[str, Path]:
    args = make_parser().parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, rows in build(load_content(args.source_dir)).items():
        paths[split] = args.output_dir / f"{split}.jsonl"
        paths[split].write_text(to_jsonl(rows), encoding="utf-8")
        print(f"{paths[split]}: {len(rows)} rows")
    return paths


if __name__ == "__main__":
    main()
