"""The old import path of `PPOTrainer` (before the PPO code was split into `trl_safe.ppo`); kept working."""

from trl_safe.ppo.models import VALUE_MODEL_DIR, PolicyAndValueModel
from trl_safe.ppo.models import gathered as _gathered
from trl_safe.ppo.score_streams import ScoreSource
from trl_safe.ppo.trainer import PPOTrainer

__all__ = ["VALUE_MODEL_DIR", "PPOTrainer", "PolicyAndValueModel", "ScoreSource", "_gathered"]
