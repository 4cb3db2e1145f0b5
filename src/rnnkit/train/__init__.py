"""The training engine shared by every task: checkpoints and the training loop."""

from .checkpoint import Checkpoint, CheckpointError, find_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .loop import Task, Trainer, TrainResult

__all__ = ["Checkpoint", "CheckpointError", "find_checkpoint", "save_checkpoint", "rng_state", "set_rng_state",
           "Task", "TrainConfig", "Trainer", "TrainResult"]
