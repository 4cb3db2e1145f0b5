"""The training engine shared by every task: the ``Task`` base class, the loop, checkpoints and run
directories. Names are imported on first use (``TrainConfig`` needs no torch)."""

from .._lazy import exports

__getattr__, __dir__, __all__ = exports(__name__, {
    "Checkpoint": ".checkpoint", "CheckpointError": ".checkpoint", "find_checkpoint": ".checkpoint",
    "save_checkpoint": ".checkpoint", "rng_state": ".checkpoint", "set_rng_state": ".checkpoint",
    "TrainConfig": ".config", "Task": ".task", "validate": ".task", "validation_totals": ".task",
    "Trainer": ".loop", "TrainResult": ".loop", "run_directory": ".rundir", "holds_run": ".rundir",
})
