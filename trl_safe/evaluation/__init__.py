"""Safety evaluation of policies: generation, reward/cost scoring, safety metrics, arena comparisons, ratings, plots.

    from trl_safe.evaluation import evaluate_safety, SafetyEvaluationConfig

    report = evaluate_safety({"sft": "path/to/sft", "ppo-lag": "path/to/ppo-lag"}, "path/to/reward",
                             "path/to/cost", "safe_rlhf_eval_problem.json")
    report.save("outputs/evaluation")

Modules: `prompts` (loading prompt sets), `generation` (batched generation and scoring), `summary_statistics` (the
scalar metrics), `arena` (head-to-head comparison), `ratings` (Bradley-Terry/Elo), `refusal` (refusal detector),
`report` (`SafetyReport`), `plots`, `evaluator` (`evaluate_safety`), and `metrics/safety_metrics` (the `evaluate`
module).
"""

from .arena import ArenaComparison, PairwiseOutcomes, arena_comparison
from .evaluator import SafetyEvaluationConfig, evaluate_safety
from .generation import Completion, generate_completions, score_completions
from .metrics import safety_metrics_path
from .prompts import load_prompts, read_records
from .ratings import BradleyTerryRatings, bradley_terry_ratings, pairwise_comparisons
from .refusal import (
    AFTER_APOLOGY_PREFIXES,
    APOLOGY_PREAMBLES,
    REFUSAL_RULES,
    RefusalDetector,
    detect_refusals,
    refusal_detector_for,
)
from .report import SafetyReport
from .summary_statistics import summarize_scores

__all__ = [
    "AFTER_APOLOGY_PREFIXES",
    "APOLOGY_PREAMBLES",
    "ArenaComparison",
    "BradleyTerryRatings",
    "Completion",
    "PairwiseOutcomes",
    "REFUSAL_RULES",
    "RefusalDetector",
    "SafetyEvaluationConfig",
    "SafetyReport",
    "arena_comparison",
    "bradley_terry_ratings",
    "detect_refusals",
    "evaluate_safety",
    "generate_completions",
    "load_prompts",
    "pairwise_comparisons",
    "read_records",
    "refusal_detector_for",
    "safety_metrics_path",
    "score_completions",
    "summarize_scores",
]
