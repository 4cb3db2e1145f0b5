"""The training engine shared by every task (checkpoints so far; the loop arrives with issue 3)."""

from .checkpoint import Checkpoint, CheckpointError, find_checkpoint, rng_state, save_checkpoint, set_rng_state

__all__ = ["Checkpoint", "CheckpointError", "find_checkpoint", "save_checkpoint", "rng_state", "set_rng_state"]
