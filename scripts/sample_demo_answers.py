"""Sample answers from SmolLM2-135M-Instruct to the project's own prompts, the raw material of the policy-sampled demo
data (`docs/demo_data.md`, "Policy-sampled pairs").

PKU-SafeRLHF's responses were sampled from the policy being aligned and then labelled; this does the same at small
scale. For every prompt of `--prompts` it writes `--num_samples` sampled answers (the pair a labeller compares), or
with `--decoding greedy` one greedy answer (what the starting policy says under greedy decoding), to `--output`, one
JSON line per answer, plus `<output>.meta.json` with the model and the exact decoding settings.

    python scripts/sample_demo_answers.py --prompts data/demo_sampled/prompts.jsonl \\
        --output data/demo_sampled/raw_samples.jsonl
    python scripts/sample_demo_answers.py --prompts data/demo_sampled/prompts.jsonl --decoding greedy \\
        --output data/demo_sampled/raw_greedy.jsonl --categories theft violence ...

The output goes only where `--output` says (never into the installed package). Answers are appended chunk by chunk
(`--chunk_prompts` prompts at a time, taking the categories in turn, each chunk seeded with `--seed` + the position of
its first prompt), so a run cut short covers every category and an interrupted run resumes where it stopped; prompts
already in `--output` are skipped.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

REQUIRED_FIELDS = ("id", "prompt", "category", "prompt_label")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--prompts", type=Path, required=True, help="JSONL with id, prompt, category, prompt_label.")
    parser.add_argument("--output", type=Path, required=True, help="JSONL of raw answers (appended to, resumable).")
    parser.add_argument("--model", default=None, help="Model directory (default: trl_safe.demo.smollm2_path()).")
    parser.add_argument("--decoding", choices=("sample", "greedy"), default="sample")
    parser.add_argument("--num_samples", type=int, default=2, help="Sampled answers per prompt.")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top_p", type=float, default=0.95)
    parser.add_argument("--max_new_tokens", type=int, default=48, help="The demo's PPO and evaluation length.")
    parser.add_argument("--chunk_prompts", type=int, default=12, help="Prompts per generate call (and per write).")
    parser.add_argument("--seed", type=int, default=1234, help="Base torch seed of the sampled answers.")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (the CPU is shared).")
    parser.add_argument("--categories", nargs="+", default=None, help="Only prompts of these categories.")
    parser.add_argument(
        "--split",
        choices=("train", "test"),
        default=None,
        help="Only prompts of this split of the shipped `sampled` configuration (a later round samples train only).",
    )
    parser.add_argument("--note", default=None, help="Free text for the .meta.json (e.g. which policy this is).")
    return parser


def read_prompts(path: Path) -> list[dict]:
    """The prompt records of `path`; a missing field or a repeated id/prompt is an error naming the line."""
    records, ids, texts = [], set(), set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        missing = [name for name in REQUIRED_FIELDS if not record.get(name)]
        if missing:
            raise ValueError(f"{path}:{number}: missing field(s) {missing}.")
        if record["id"] in ids or record["prompt"] in texts:
            raise ValueError(f"{path}:{number}: id {record['id']!r} or its prompt occurs twice.")
        ids.add(record["id"])
        texts.add(record["prompt"])
        records.append(record)
    if not records:
        raise ValueError(f"{path} holds no prompts.")
    return records


def round_robin(prompts: list[dict]) -> list[dict]:
    """The prompts reordered one category at a time (first of each category, then second, ...), so that a run cut
    short still covers every category evenly."""
    by_category: dict[str, list[dict]] = {}
    for record in prompts:
        by_category.setdefault(record["category"], []).append(record)
    queues = list(by_category.values())
    return [queue[rank] for rank in range(max(map(len, queues))) for queue in queues if rank < len(queue)]


def answer_id(prompt_id: str, decoding: str, index: int) -> str:
    """`theft-03.s0`, `theft-03.s1` for samples, `theft-03.g` for the greedy answer."""
    return f"{prompt_id}.g" if decoding == "greedy" else f"{prompt_id}.s{index}"


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    prompts = read_prompts(args.prompts)
    if args.categories is not None:
        prompts = [record for record in prompts if record["category"] in args.categories]
    if args.split is not None:
        from trl_safe.demo import load_demo_dataset

        in_split = set(load_demo_dataset(args.split, config="sampled")["prompt"])
        prompts = [record for record in prompts if record["prompt"] in in_split]
    prompts = round_robin(prompts)
    done: set[str] = set()
    if args.output.exists():
        done = {json.loads(line)["prompt_id"] for line in args.output.read_text(encoding="utf-8").splitlines() if line}
    todo = [record for record in prompts if record["id"] not in done]
    print(f"{len(prompts)} prompts, {len(prompts) - len(todo)} already answered in {args.output}.")

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from trl_safe.demo import smollm2_path
    from trl_safe.evaluation.generation import generate_completions

    torch.set_num_threads(args.threads)
    model_dir = Path(args.model) if args.model else smollm2_path()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    sampling = args.decoding == "sample"
    copies = args.num_samples if sampling else 1
    config = (
        GenerationConfig(
            max_new_tokens=args.max_new_tokens, do_sample=True, temperature=args.temperature, top_p=args.top_p, top_k=0
        )
        if sampling
        else GenerationConfig(max_new_tokens=args.max_new_tokens, do_sample=False)
    )

    args.output.parent.mkdir(parents=True, exist_ok=True)
    # Chunks are numbered over the full (filtered) prompt list, so a resumed run reuses each chunk's seed.
    position = {record["id"]: index for index, record in enumerate(prompts)}
    for start in range(0, len(todo), args.chunk_prompts):
        chunk = todo[start : start + args.chunk_prompts]
        torch.manual_seed(args.seed + position[chunk[0]["id"]])
        # Each prompt repeated `copies` times in one call: the batch is shared, the draws independent.
        texts = [record["prompt"] for record in chunk for _ in range(copies)]
        completions = generate_completions(
            model, tokenizer, texts, generation_config=config, batch_size=len(texts), desc=f"chunk {start}"
        )
        with args.output.open("a", encoding="utf-8") as handle:
            for offset, completion in enumerate(completions):
                record, index = chunk[offset // copies], offset % copies
                row = {
                    "answer_id": answer_id(record["id"], args.decoding, index),
                    "prompt_id": record["id"],
                    "category": record["category"],
                    "prompt_label": record["prompt_label"],
                    "prompt": record["prompt"],
                    "decoding": args.decoding,
                    "response": completion.text.strip(),
                    "num_tokens": completion.num_tokens,
                    "finished": completion.finished,
                }
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{min(start + len(chunk), len(todo))}/{len(todo)} prompts answered", flush=True)

    marker = model_dir / "trl_safe_conversion.json"
    meta = {
        "model_dir": str(model_dir),
        "model_source": json.loads(marker.read_text()) if marker.is_file() else None,
        "prompts": str(args.prompts),
        "categories": args.categories,
        "split": args.split,
        "note": args.note,
        "decoding": args.decoding,
        "answers_per_prompt": copies,
        "temperature": args.temperature if sampling else None,
        "top_p": args.top_p if sampling else None,
        "top_k": 0 if sampling else None,
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed if sampling else None,
        "chunk_prompts": args.chunk_prompts,
        "chat_template": "the tokenizer's own (one user turn + generation prompt, its default system turn)",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    meta_path = args.output.with_name(args.output.name + ".meta.json")
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"Answers in {args.output}; settings in {meta_path}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
