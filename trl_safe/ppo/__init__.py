"""PPO for current TRL, split into the modules a maintainer looks for by name:

- `trl_safe.ppo.models`: the policy-and-critic module, loading, the critic's value heads, the reference, copies that
  work under DeepSpeed ZeRO-3;
- `trl_safe.ppo.score_streams`: the reward (and cost) sources, models or functions, read through
  `trl_safe.scoring.Scorer`;
- `trl_safe.ppo.experience`: rollouts (sampling with `generate` or vLLM) and the typed `Experience`, with the
  numbered steps of one rollout in `ExperienceMaker._make_experience`;
- `trl_safe.ppo.trainer`: `PPOTrainer`, the `Trainer` glue (set-up, loss, metrics, checkpoints, model card).

The formulas are in `trl_safe.rl_math`; Safe RLHF's `PPOLagTrainer` is `trl_safe.ppo_lag_trainer`.
"""

from trl_safe.ppo.experience import Experience
from trl_safe.ppo.models import VALUE_MODEL_DIR, PolicyAndValueModel
from trl_safe.ppo.score_streams import ScoreSource, ScoreStream
from trl_safe.ppo.trainer import PPOTrainer

__all__ = ["VALUE_MODEL_DIR", "Experience", "PPOTrainer", "PolicyAndValueModel", "ScoreSource", "ScoreStream"]
