"""Checkpoints: round trip, exact resume state, atomic against a kill, clear errors."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from rnnkit.train import CheckpointError, find_checkpoint, rng_state, save_checkpoint, set_rng_state


class TiedModel(torch.nn.Module):
    """Embedding -> LSTM -> decoder sharing the embedding's weight (weight tying)."""

    def __init__(self, vocab=11, size=8):
        super().__init__()
        import rnnkit.nn
        self.embed = torch.nn.Embedding(vocab, size)
        self.rnn = rnnkit.nn.LSTM(size, size)
        self.decoder = torch.nn.Linear(size, vocab)
        self.decoder.weight = self.embed.weight


def test_round_trip_rebuilds_the_same_model(tmp_path):
    torch.manual_seed(0)
    model = TiedModel()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = model.decoder(model.rnn(model.embed(torch.tensor([[1, 2, 3]])))[0]).sum()
    loss.backward()
    optimiser.step()
    config = {"task": "lm", "model": {"vocab": 11, "size": 8}, "vocab": list("abcdefghijk")}
    saved = save_checkpoint(tmp_path, model, config, step=7,
                            trainer_state={"optimizer": optimiser.state_dict(), "rng": rng_state()})
    found = find_checkpoint(tmp_path)
    assert found.path == saved.path and found.config["step"] == 7 and found.config["vocab"] == config["vocab"]
    rebuilt = TiedModel(**found.config["model"])
    found.load_weights(rebuilt)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, rebuilt.state_dict()[name]), name
    assert rebuilt.decoder.weight is rebuilt.embed.weight                 # still tied
    state = found.trainer_state()
    fresh = torch.optim.AdamW(rebuilt.parameters(), lr=1e-3)
    fresh.load_state_dict(state["optimizer"])
    assert fresh.state_dict()["state"][0]["step"] == optimiser.state_dict()["state"][0]["step"]


def test_rng_state_resumes_the_same_random_stream():
    torch.manual_seed(3)
    state = rng_state()
    first = torch.rand(4)
    torch.rand(100)
    set_rng_state(state)
    assert torch.equal(torch.rand(4), first)


def test_latest_moves_and_old_checkpoints_are_pruned(tmp_path):
    model = torch.nn.Linear(3, 2)
    for step in (1, 2, 3, 3):
        save_checkpoint(tmp_path, model, {}, step=step, keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["LATEST", "checkpoint-00000003", "checkpoint-00000003-1"]
    assert find_checkpoint(tmp_path).path.name == "checkpoint-00000003-1"


def test_best_checkpoint_is_kept_and_found(tmp_path):
    model = torch.nn.Linear(3, 2)
    save_checkpoint(tmp_path, model, {}, step=1)
    with pytest.raises(CheckpointError, match="no best checkpoint"):
        find_checkpoint(tmp_path / "BEST")
    for step, best in ((2, True), (3, False), (4, False), (5, False)):
        save_checkpoint(tmp_path, model, {}, step=step, keep=2, best=best)
    names = sorted(p.name for p in tmp_path.iterdir())
    # the two newest, and step 2, which BEST still names
    assert names == ["BEST", "LATEST", "checkpoint-00000002", "checkpoint-00000004", "checkpoint-00000005"]
    assert find_checkpoint(tmp_path / "BEST").config["step"] == 2
    assert find_checkpoint(tmp_path).config["step"] == 5
    save_checkpoint(tmp_path, model, {}, step=6, keep=2, best=True)       # a new best frees step 2
    save_checkpoint(tmp_path, model, {}, step=7, keep=2)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-00000006", "checkpoint-00000007"]
    assert find_checkpoint(tmp_path / "BEST").config["step"] == 6


def test_failure_while_writing_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 2)
    save_checkpoint(tmp_path, model, {"which": "first"}, step=1)

    def broken_rename(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, model, {"which": "second"}, step=2)
    monkeypatch.undo()
    assert find_checkpoint(tmp_path).config["which"] == "first"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_a_killed_writer_never_leaves_a_broken_latest(tmp_path):
    # A child saves checkpoints in a loop; it is killed at an arbitrary moment. Whatever LATEST
    # names must load, and its weights must be one consistent save (all equal to its step).
    script = textwrap.dedent(f"""
        import torch
        from rnnkit.train import save_checkpoint
        model = torch.nn.Linear(512, 512)
        step = 0
        while True:
            step += 1
            with torch.no_grad():
                model.weight.fill_(step); model.bias.fill_(step)
            save_checkpoint({str(tmp_path)!r}, model, {{"marker": step}}, step=step)
    """)
    child = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while not (tmp_path / "LATEST").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.4)
    child.send_signal(signal.SIGKILL)
    child.wait()
    found = find_checkpoint(tmp_path)
    model = torch.nn.Linear(512, 512)
    found.load_weights(model)
    marker = found.config["marker"]
    assert marker >= 1
    assert torch.all(model.weight == marker) and torch.all(model.bias == marker)


def test_missing_directory_is_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        find_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        find_checkpoint(tmp_path)


def test_corrupt_files_are_named(tmp_path):
    model = torch.nn.Linear(3, 2)
    found = save_checkpoint(tmp_path, model, {}, step=1)
    (found.path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        find_checkpoint(tmp_path).load_weights(torch.nn.Linear(3, 2))
    (found.path / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="config.json"):
        find_checkpoint(tmp_path)


def test_a_model_of_another_shape_is_refused(tmp_path):
    save_checkpoint(tmp_path, torch.nn.Linear(3, 2), {}, step=1)
    with pytest.raises(CheckpointError, match="do not fit|does not fit"):
        find_checkpoint(tmp_path).load_weights(torch.nn.Linear(4, 2))


def test_unserialisable_config_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path, torch.nn.Linear(3, 2), {"bad": object()}, step=1)
    assert list(tmp_path.iterdir()) == []
