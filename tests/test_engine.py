"""The engine around tasks: the ``Task`` base class and corpus-level metrics, interrupts (SIGINT,
SIGTERM) and time-based checkpoints that resume exactly, a time limit that includes the final
evaluation, devices, and what a run shows while it trains."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from torch import nn

from rnnkit.options import ConfigError
from rnnkit.train import Task, TrainConfig, Trainer, find_checkpoint, validate
from rnnkit.train import loop
from test_trainer import SumTask, quiet, read_log, train_batches, valid_batches

pytestmark = pytest.mark.usefixtures("one_thread")


class SignalAt(SumTask):
    """Sends itself ``signals`` (a list) during training step ``at``, as Ctrl-C or a kill would."""

    def __init__(self, at: int, signals=(signal.SIGINT,), **kwargs):
        super().__init__(**kwargs)
        self.at, self.signals, self.steps = at, list(signals), 0

    def training_step(self, batch):
        self.steps += 1
        if self.steps == self.at:
            for signum in self.signals:
                os.kill(os.getpid(), signum)
        return super().training_step(batch)


def config(**kwargs):
    return quiet(**{"max_steps": 30, "eval_every": 10, "lr": 1e-2, **kwargs})


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_at_the_step_boundary_with_a_checkpoint_that_resumes_exactly(tmp_path, signum):
    full = Trainer(SumTask(seed=7), config(), tmp_path / "full").fit(train_batches, valid_batches)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stopped = Trainer(SignalAt(13, [signum], seed=7), config(), tmp_path / "run").fit(train_batches, valid_batches)
    assert stopped.stopped_because == "interrupted" and stopped.signal == signum and stopped.steps == 13
    assert {s: signal.getsignal(s) for s in handlers} == handlers              # the handlers are put back
    assert find_checkpoint(tmp_path / "run").config["step"] == 13
    assert [int(r["step"]) for r in read_log(tmp_path / "run")] == [10]         # no evaluation at the stop
    rest = Trainer(SumTask(seed=99), config(), tmp_path / "run").fit(train_batches, valid_batches, resume=True)
    assert sorted(rest.losses) == list(range(14, 31))
    assert [rest.losses[s] for s in range(14, 31)] == [full.losses[s] for s in range(14, 31)]
    assert [stopped.losses[s] for s in range(1, 14)] == [full.losses[s] for s in range(1, 14)]
    assert rest.metrics == full.metrics
    assert [int(r["step"]) for r in read_log(tmp_path / "run")] == [10, 20, 30]


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        Trainer(SignalAt(13, [signal.SIGINT, signal.SIGINT]), config(), tmp_path).fit(train_batches, valid_batches)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert find_checkpoint(tmp_path).config["step"] == 10                       # the evaluation's, intact


def test_time_checkpoints_between_evaluations_resume_exactly_and_log_nothing(tmp_path):
    every_step = config(checkpoint_every=1e-9)                                  # minutes: after every step
    full = Trainer(SumTask(seed=3), config(), tmp_path / "full").fit(train_batches, valid_batches)
    first = Trainer(SumTask(seed=3), every_step, tmp_path / "run").fit(
        lambda epoch: train_batches(epoch)[:3] if epoch == 1 else train_batches(epoch), valid_batches)
    assert first.steps == 30 and [int(r["step"]) for r in read_log(tmp_path / "run")] == [10, 20, 30]
    assert find_checkpoint(tmp_path / "run" / "BEST").config["step"] in (10, 20, 30)
    # a run killed at step 17 resumes from its time checkpoint at step 17
    partial = Trainer(SumTask(seed=3), config(checkpoint_every=1e-9, max_steps=17), tmp_path / "cut").fit(
        train_batches, valid_batches)
    assert partial.steps == 17 and find_checkpoint(tmp_path / "cut").config["step"] == 17
    rest = Trainer(SumTask(seed=5), config(), tmp_path / "cut").fit(train_batches, valid_batches, resume=True)
    assert [rest.losses[s] for s in range(18, 31)] == [full.losses[s] for s in range(18, 31)]


class FakeClock:
    """``time`` for the engine: a training step takes 1 s, a validation batch 3 s."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class TimedTask(SumTask):
    def __init__(self, clock, **kwargs):
        super().__init__(**kwargs)
        self.clock = clock

    def training_step(self, batch):
        self.clock.sleep(1.0)
        return super().training_step(batch)

    def validation_step(self, batch):
        self.clock.sleep(3.0)
        return super().validation_step(batch)


def test_max_time_includes_the_final_evaluation(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(loop, "time", clock)
    result = Trainer(TimedTask(clock), quiet(max_time=21, eval_every=4, max_steps=1000), tmp_path).fit(
        train_batches, valid_batches)                                     # 2 validation batches: 6 s
    assert result.stopped_because == "max_time"
    assert clock.now <= 21                                                # training stopped early enough
    assert clock.now >= 21 - 6 - 1                                        # but not much earlier
    assert [int(r["step"]) for r in read_log(tmp_path)][-1] == result.steps


class CorpusAccuracy(SumTask):
    """Validation statistics that add up: correct signs and examples; the metric is their ratio."""

    def validation_step(self, batch):
        x, y = batch
        return {"correct": int(((self.forward(x) > 0) == (y > 0)).sum()), "examples": len(y)}

    def validation_metrics(self, totals, batches):
        return {"accuracy": totals["correct"] / totals["examples"], "loss": 0.0}


def test_validation_reduces_summed_statistics_to_a_corpus_metric():
    task = CorpusAccuracy()
    uneven = [(x[:13], y[:13]) for x, y in valid_batches()] + [(valid_batches()[0][0][:3], valid_batches()[0][1][:3])]
    metrics = validate(task, uneven)
    with torch.no_grad():
        task.model.eval()
        hits = [((task.forward(x) > 0) == (y > 0)).float() for x, y in uneven]
    assert metrics["accuracy"] == pytest.approx(float(torch.cat(hits).mean()))     # not the mean of batch means
    assert metrics["accuracy"] != pytest.approx(float(torch.stack([h.mean() for h in hits]).mean()))


class Hooks(Task):
    """A Task subclass using the hooks: two parameter groups, an epoch counter, carried state."""

    def __init__(self):
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 1))
        self.epochs, self.carried = [], 0

    def training_step(self, batch):
        x, y = batch
        self.carried += 1
        return nn.functional.mse_loss(self.model(x[:, 0]).squeeze(-1), y)

    def validation_step(self, batch):
        x, y = batch
        return {"loss_sum": nn.functional.mse_loss(self.model(x[:, 0]).squeeze(-1), y, reduction="sum"),
                "count": len(y)}

    def validation_metrics(self, totals, batches):
        return {"loss": totals["loss_sum"] / totals["count"]}

    def config(self):
        return {"task": "hooks"}

    def param_groups(self):
        return [{"params": self.model[0].parameters(), "lr_scale": 0.5}, {"params": self.model[1].parameters()}]

    def start_epoch(self, epoch):
        self.epochs.append(epoch)

    def state_dict(self):
        return {"carried": self.carried}

    def load_state_dict(self, state):
        self.carried = state["carried"]


def test_a_task_subclass_gets_its_hooks_called_and_its_state_resumed(tmp_path):
    task = Hooks()
    trainer = Trainer(task, quiet(max_epochs=2, eval_every=5, lr=0.1), tmp_path)
    trainer.fit(train_batches, valid_batches)
    assert task.epochs == [0, 1] and task.carried == 16
    assert [group["lr"] for group in trainer.optimizer.param_groups] == [0.05, 0.1]
    resumed = Hooks()
    Trainer(resumed, quiet(max_epochs=3, eval_every=5, lr=0.1), tmp_path).fit(train_batches, valid_batches,
                                                                              resume=True)
    assert resumed.carried == 16 + 8 and resumed.epochs == [2]


def test_the_base_class_defaults():
    task = Task()
    assert task.param_groups() is None and task.state_dict() is None and task.start_epoch(3) is None
    assert task.validation_metrics({"loss": 6.0, "accuracy": 1.5}, 3) == {"loss": 2.0, "accuracy": 0.5}
    with pytest.raises(NotImplementedError):
        task.training_step(None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
@pytest.mark.parametrize("device, message", [("cuda", "no GPU"), ("cuda:0", "no GPU"), ("bogus", "device must be")])
def test_a_device_that_is_not_here_is_one_error_naming_the_field(device, message):
    with pytest.raises(ConfigError, match=message) as error:
        Trainer(SumTask(), quiet(max_steps=1, device=device))
    assert error.value.field == "device"


def test_training_on_the_cpu_device_named_explicitly(tmp_path):
    result = Trainer(SumTask(), quiet(max_steps=4, eval_every=2, device="cpu"), tmp_path).fit(train_batches,
                                                                                             valid_batches)
    assert result.steps == 4 and find_checkpoint(tmp_path).config["train"]["device"] == "cpu"


def test_progress_shows_evaluations_on_stdout_and_steps_with_the_time_left_on_stderr(tmp_path, capsys):
    Trainer(SumTask(), TrainConfig(max_steps=8, eval_every=4, log_every=2, tensorboard=False), tmp_path).fit(
        train_batches, valid_batches)
    out, err = capsys.readouterr()
    evaluations = out.strip().splitlines()
    assert len(evaluations) == 2 and evaluations[0].startswith("step 4  epoch 0  validation loss ")
    assert "(best)" in evaluations[0] and " lr " in evaluations[0]
    steps = err.strip().splitlines()
    assert [line.split()[1] for line in steps] == ["2/8", "4/8", "6/8", "8/8"]
    assert all(" lr " in line and " left" in line and "sequences/s" in line for line in steps)
    assert "next: eval in 2 steps, checkpoint in 10:00" in steps[0] or "checkpoint in 9:59" in steps[0]


def test_cosine_time_decays_over_the_time_budget():
    config = TrainConfig(lr=1.0, schedule="cosine_time", max_time=100, warmup_steps=10)
    assert config.lr_at(5, elapsed=0.0) == pytest.approx(0.5)                  # warm-up, in steps
    assert config.lr_at(50, elapsed=0.0) == pytest.approx(1.0)
    assert config.lr_at(50, elapsed=50.0) == pytest.approx(0.5)
    assert config.lr_at(50, elapsed=100.0) == pytest.approx(0.0, abs=1e-12)
    assert config.lr_at(50, elapsed=500.0) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="max_time must be set for the cosine_time schedule"):
        TrainConfig(schedule="cosine_time", max_steps=10)
