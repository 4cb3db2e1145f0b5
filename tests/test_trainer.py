"""The training loop: it learns, resumes exactly, refuses to mix runs, and honours its stop criteria."""

from __future__ import annotations

import csv
import math
import time

import pytest
import torch
from torch import nn

import rnnkit.nn as rk
from rnnkit.train import TrainConfig, Trainer, find_checkpoint


pytestmark = pytest.mark.usefixtures("one_thread")


class SumTask:
    """Regression: predict the mean of the first feature of a sequence with an LSTM (+ dropout)."""

    def __init__(self, hidden: int = 8, dropout: float = 0.2, seed: int = 0):
        torch.manual_seed(seed)
        self.hidden, self.dropout = hidden, dropout
        self.lstm = rk.LSTM(2, hidden, batch_first=True)
        self.model = nn.ModuleDict({"lstm": self.lstm, "drop": nn.Dropout(dropout), "head": nn.Linear(hidden, 1)})

    def forward(self, x):
        output, _ = self.model["lstm"](x)
        return self.model["head"](self.model["drop"](output[:, -1])).squeeze(-1)

    def training_step(self, batch):
        x, y = batch
        return nn.functional.mse_loss(self.forward(x).float(), y)

    def validation_step(self, batch):
        x, y = batch
        return {"loss": nn.functional.mse_loss(self.forward(x), y).item()}

    def config(self):
        return {"hidden": self.hidden, "dropout": self.dropout}


def make_data(n: int = 64, steps: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, steps, 2, generator=g)
    return x, x[:, :, 0].mean(1) * 2


TRAIN, VALID = make_data(64), make_data(32, seed=2)


def train_batches(epoch: int, batch: int = 8):
    """The epoch's shuffled batches, the same for the same epoch (own generator)."""
    order = torch.randperm(len(TRAIN[0]), generator=torch.Generator().manual_seed(100 + epoch))
    return [(TRAIN[0][i], TRAIN[1][i]) for i in order.split(batch)]


def valid_batches():
    return [(VALID[0][i:i + 16], VALID[1][i:i + 16]) for i in range(0, 32, 16)]


def quiet(**kwargs) -> TrainConfig:
    return TrainConfig(progress=False, **kwargs)


def read_log(out_dir):
    with open(out_dir / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_tiny_task_learns(tmp_path):
    task = SumTask()
    trainer = Trainer(task, quiet(lr=2e-2, max_epochs=15, eval_every=40), tmp_path)
    initial = trainer._validate(valid_batches)["loss"]
    result = trainer.fit(train_batches, valid_batches)
    assert result.stopped_because == "max_epochs" and result.steps == 15 * 8 and result.epochs == 15
    assert result.metrics["loss"] < 0.5 * initial
    rows = read_log(tmp_path)
    assert list(rows[0])[:5] == ["step", "epoch", "elapsed_seconds", "lr", "train_loss"] and "loss" in rows[0]
    assert [int(r["step"]) for r in rows] == [40, 80, 120]
    latest = find_checkpoint(tmp_path)
    assert latest.config["step"] == 120 and latest.path == result.checkpoint
    assert latest.config["task"] == task.config() and latest.config["train"]["lr"] == 2e-2


def resume_config(max_steps):
    return quiet(lr=1e-2, schedule="cosine", warmup_steps=5, schedule_steps=30, max_steps=max_steps,
                 eval_every=10, clip_grad_norm=1.0, seed=3)


def test_resume_is_exact(tmp_path):
    a = SumTask(seed=7)
    full = Trainer(a, resume_config(30), tmp_path / "a").fit(train_batches, valid_batches)
    b = SumTask(seed=7)
    first = Trainer(b, resume_config(20), tmp_path / "b").fit(train_batches, valid_batches)
    assert first.steps == 20 and sorted(first.losses) == list(range(1, 21))
    b2 = SumTask(seed=99)                                # different initial weights: all must come from disk
    rest = Trainer(b2, resume_config(30), tmp_path / "b").fit(train_batches, valid_batches, resume=True)
    assert sorted(rest.losses) == list(range(21, 31))
    assert [rest.losses[s] for s in range(21, 31)] == [full.losses[s] for s in range(21, 31)]
    assert [first.losses[s] for s in range(1, 21)] == [full.losses[s] for s in range(1, 21)]
    for (name, p), q in zip(a.model.state_dict().items(), b2.model.state_dict().values()):
        assert torch.equal(p, q), name
    assert rest.metrics == full.metrics and rest.steps == 30
    assert [int(r["step"]) for r in read_log(tmp_path / "b")] == [10, 20, 30]


def test_resume_with_other_task_config_or_reuse_of_out_dir_is_refused(tmp_path):
    Trainer(SumTask(), quiet(max_steps=4, eval_every=2), tmp_path).fit(train_batches, valid_batches)
    before = find_checkpoint(tmp_path)
    weights = (before.path / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="different model/vocabulary.*hidden"):
        Trainer(SumTask(hidden=4), quiet(max_steps=8), tmp_path).fit(train_batches, valid_batches, resume=True)
    with pytest.raises(ValueError, match="already holds a run"):
        Trainer(SumTask(), quiet(max_steps=8), tmp_path).fit(train_batches, valid_batches)
    after = find_checkpoint(tmp_path)
    assert after.path == before.path and (after.path / "model.safetensors").read_bytes() == weights
    assert len(read_log(tmp_path)) == 2


class SlowTask(SumTask):
    def training_step(self, batch):
        time.sleep(0.02)
        return super().training_step(batch)


class DenormalProbe(SumTask):
    """Records whether a float32 denormal survives arithmetic at each training step."""

    def __init__(self):
        super().__init__()
        self.denormal_kept = []

    def training_step(self, batch):
        self.denormal_kept.append(float(torch.tensor([1e-39]) * 1.0) != 0.0)
        return super().training_step(batch)


@pytest.mark.parametrize("flush", [True, False])
def test_denormals_are_flushed_while_training_unless_asked_not_to(tmp_path, flush):
    task = DenormalProbe()
    Trainer(task, quiet(max_steps=3, eval_every=3, flush_denormal=flush), tmp_path).fit(train_batches)
    if torch.set_flush_denormal(False):          # a CPU that can flush them (x86 with SSE3)
        assert task.denormal_kept == [not flush] * 3
    assert float(torch.tensor([1e-39]) * 1.0) != 0.0        # and after training, IEEE again


def test_max_time_stops_early(tmp_path):
    started = time.perf_counter()
    result = Trainer(SlowTask(), quiet(max_steps=10_000, max_time=0.3, eval_every=1000), tmp_path).fit(train_batches)
    assert result.stopped_because == "max_time" and 1 <= result.steps < 10_000
    assert time.perf_counter() - started < 5.0
    assert find_checkpoint(tmp_path).config["step"] == result.steps


class ConstantValidation(SumTask):
    def validation_step(self, batch):
        return {"loss": 1.0, "accuracy": 0.5}


def test_early_stopping_after_patience(tmp_path):
    config = quiet(max_steps=100, eval_every=2, early_stopping_patience=3)
    result = Trainer(ConstantValidation(), config, tmp_path).fit(train_batches, valid_batches)
    # evaluation 1 sets the best; evaluations 2, 3 and 4 do not improve on it
    assert result.stopped_because == "early_stopping" and result.steps == 8
    assert result.metrics == {"loss": 1.0, "accuracy": 0.5} and result.best == 1.0


@pytest.mark.parametrize("mode, pick", [("min", min), ("max", max)])
def test_best_points_at_the_best_evaluation(tmp_path, mode, pick):
    config = quiet(max_steps=12, eval_every=2, monitor_mode=mode)
    Trainer(SumTask(), config, tmp_path).fit(train_batches, valid_batches)
    rows = read_log(tmp_path)
    best = pick(rows, key=lambda row: float(row["loss"]))
    assert find_checkpoint(tmp_path / "BEST").config["step"] == int(best["step"])
    assert find_checkpoint(tmp_path).config["step"] == 12


def test_sgd_plateau_divides_lr(tmp_path):
    config = quiet(optimizer="sgd", lr=0.1, momentum=0.9, schedule="plateau", plateau_factor=4.0,
                   max_steps=8, eval_every=2)
    Trainer(ConstantValidation(), config, tmp_path).fit(train_batches, valid_batches)
    lrs = [float(r["lr"]) for r in read_log(tmp_path)]
    assert lrs == pytest.approx([0.1, 0.1, 0.025, 0.00625])


def test_epoch_decay_divides_lr_each_epoch_after_the_first_ones(tmp_path):
    # Zaremba et al.: lr 1 for 2 epochs, then halved at the start of every later epoch.
    config = quiet(optimizer="sgd", lr=1.0, schedule="epoch_decay", decay_after_epochs=2, decay_factor=2.0,
                   max_epochs=4, eval_every=1)
    steps_per_epoch = len(list(train_batches(0)))
    Trainer(ConstantValidation(), config, tmp_path).fit(train_batches, valid_batches)
    by_epoch = {}
    for row in read_log(tmp_path):
        by_epoch.setdefault((int(row["step"]) - 1) // steps_per_epoch, set()).add(float(row["lr"]))
    assert by_epoch == {0: {1.0}, 1: {1.0}, 2: {0.5}, 3: {0.25}}


class Linear:
    """A loss with a huge gradient: with SGD (lr 1) the update *is* the clipped gradient."""

    def __init__(self):
        self.model = nn.Linear(4, 1, bias=False)
        nn.init.zeros_(self.model.weight)

    def training_step(self, batch):
        return (self.model(batch) * 1000).sum()

    def validation_step(self, batch):
        return {"loss": 0.0}

    def config(self):
        return {}


@pytest.mark.parametrize("clip", [None, 0.5])
def test_clip_grad_norm_bounds_the_update(clip):
    task = Linear()
    Trainer(task, quiet(optimizer="sgd", lr=1.0, max_steps=1, clip_grad_norm=clip)).fit(
        lambda epoch: [torch.ones(3, 4)])
    norm = task.model.weight.norm().item()
    assert norm == pytest.approx(0.5, rel=1e-4) if clip else norm == pytest.approx(6000.0)


@pytest.mark.parametrize("native, warns", [(False, True), (True, False), (None, False)])
def test_bf16_warns_on_a_cpu_without_native_bf16(monkeypatch, native, warns):
    import warnings

    from rnnkit.train import loop

    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(SumTask(), quiet(bf16=True, max_steps=1))
        Trainer(SumTask(), quiet(bf16=False, max_steps=1))
    assert [str(w.message).startswith("bf16=True on a CPU without") for w in caught] == ([True] if warns else [])


@pytest.mark.filterwarnings("ignore:bf16=True on a CPU without")
def test_bf16_trains(tmp_path):
    result = Trainer(SumTask(), quiet(bf16=True, max_steps=6, eval_every=3), tmp_path).fit(
        train_batches, valid_batches)
    assert result.steps == 6 and all(math.isfinite(v) for v in result.losses.values())
    assert math.isfinite(result.metrics["loss"])


@pytest.mark.parametrize("field, value", [
    ("optimizer", "adam"), ("schedule", "linear"), ("lr", 0.0), ("lr", float("nan")), ("weight_decay", -1.0),
    ("clip_grad_norm", 0.0), ("max_steps", 0), ("max_steps", 2.5), ("max_time", -1.0), ("eval_every", 0),
    ("early_stopping_patience", 0), ("warmup_steps", -1), ("plateau_factor", 0.5), ("bf16", "yes"),
    ("decay_factor", 0.5), ("decay_after_epochs", -1),
    ("monitor", ""), ("seed", -1), ("monitor_mode", "lowest"), ("tensorboard", "yes"),
])
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{"max_steps": 10, field: value})


def test_config_needs_a_stop_and_cosine_a_horizon():
    with pytest.raises(ValueError, match="max_steps"):
        TrainConfig()
    with pytest.raises(ValueError, match="schedule_steps"):
        TrainConfig(schedule="cosine", max_epochs=3)


def test_missing_monitor_metric(tmp_path):
    with pytest.raises(ValueError, match="monitor"):
        Trainer(SumTask(), quiet(max_steps=2, eval_every=1, monitor="accuracy"), tmp_path).fit(
            train_batches, valid_batches)


def test_resuming_a_finished_run_trains_no_more(tmp_path):
    config = quiet(max_steps=100, eval_every=2, early_stopping_patience=2)
    first = Trainer(ConstantValidation(), config, tmp_path).fit(train_batches, valid_batches)
    again = Trainer(ConstantValidation(), config, tmp_path).fit(train_batches, valid_batches, resume=True)
    assert first.stopped_because == again.stopped_because == "early_stopping"
    assert again.losses == {} and again.steps == first.steps and again.checkpoint == first.checkpoint
    assert len(read_log(tmp_path)) == 3


def test_empty_epoch_is_an_error():
    with pytest.raises(ValueError, match="no batches"):
        Trainer(SumTask(), quiet(max_steps=5)).fit(lambda epoch: [])


def test_progress_counts_tokens_of_token_batches_and_sequences_otherwise():
    from rnnkit.train.loop import _batch_size

    tokens = torch.zeros(35, 20, dtype=torch.long)                     # a (T, B) language-model window
    assert _batch_size((tokens, tokens, 0)) == 700
    assert _batch_size((torch.zeros(8, 6, 2), torch.zeros(8))) == 8     # 8 float sequences
    assert _batch_size({"x": torch.zeros(3, 4)}) == 3 and _batch_size("no tensors") == 1


def read_tensorboard(out_dir) -> dict:
    """``{tag: [(step, value), ...]}`` of the scalars in ``out_dir/tensorboard`` (resume purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out_dir / "tensorboard"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_scalars_match_the_csv_log(tmp_path):
    pytest.importorskip("tensorboard")
    Trainer(SumTask(), quiet(max_steps=12, eval_every=5, log_every=4), tmp_path).fit(train_batches, valid_batches)
    scalars, rows = read_tensorboard(tmp_path), read_log(tmp_path)
    for tag, column in [("valid/loss", "loss"), ("train/loss_since_eval", "train_loss"), ("train/lr", "lr")]:
        assert [step for step, _ in scalars[tag]] == [5, 10, 12]
        assert [value for _, value in scalars[tag]] == pytest.approx([float(r[column]) for r in rows], rel=1e-6)
    assert [step for step, _ in scalars["train/loss"]] == [4, 8, 12]
    Trainer(SumTask(), quiet(max_steps=4, eval_every=2, tensorboard=False), tmp_path / "b").fit(train_batches)
    assert (tmp_path / "b" / "log.csv").exists() and not (tmp_path / "b" / "tensorboard").exists()


def test_tensorboard_of_a_resumed_run_has_each_step_once(tmp_path):
    pytest.importorskip("tensorboard")
    Trainer(SumTask(), resume_config(30), tmp_path).fit(train_batches, valid_batches)
    # a run killed after logging step 30 but before pointing LATEST at its checkpoint
    (tmp_path / "LATEST").write_text("checkpoint-00000020\n")
    assert find_checkpoint(tmp_path).config["step"] == 20
    time.sleep(1.0 - time.time() % 1.0)                 # event files sort by their whole-second timestamp
    Trainer(SumTask(), resume_config(30), tmp_path).fit(train_batches, valid_batches, resume=True)
    scalars, rows = read_tensorboard(tmp_path), read_log(tmp_path)
    assert [step for step, _ in scalars["valid/loss"]] == [int(r["step"]) for r in rows] == [10, 20, 30]
    assert [value for _, value in scalars["valid/loss"]] == pytest.approx([float(r["loss"]) for r in rows], rel=1e-6)
    assert [step for step, _ in scalars["train/loss"]] == list(range(10, 31, 10))


@pytest.mark.parametrize("clip", [None, 1.0])
def test_a_non_finite_loss_stops_the_run_before_it_changes_the_weights(tmp_path, clip):
    from rnnkit.train.loop import TrainingDiverged

    task = SumTask()
    poisoned = [(TRAIN[0][:8], TRAIN[1][:8]), (TRAIN[0][8:16], TRAIN[1][8:16] * float("nan"))]
    trainer = Trainer(task, quiet(lr=1e-2, max_steps=10, eval_every=1, clip_grad_norm=clip), tmp_path)
    with pytest.raises(TrainingDiverged, match=r"the training loss is nan at step 2 \(epoch 0\).*lower --lr") as info:
        trainer.fit(lambda epoch: poisoned, valid_batches)
    assert "\n" not in str(info.value) and str(find_checkpoint(tmp_path).path) in str(info.value)
    assert all(torch.isfinite(p).all() for p in task.model.parameters())
    assert find_checkpoint(tmp_path).config["step"] == 1
