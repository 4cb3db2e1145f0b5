"""Checkpoints written before the task registry (format 1, tests/data/format1) still load, give the
results they gave then, and a format-1 run resumes; a format this release cannot read is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import rnnkit
from rnnkit.cli import main
from rnnkit.tasks import classify, lm
from rnnkit.train import CheckpointError, TrainConfig, find_checkpoint

DATA = Path(__file__).parent / "data" / "format1"
EXPECTED = json.loads((DATA / "expected.json").read_text())

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", ["lm-char", "lm-word", "lm-bpe"])
def test_language_models_of_format_1_generate_and_evaluate_as_they_did(name):
    assert find_checkpoint(DATA / name).config["format"] == 1
    model = rnnkit.load(DATA / name)
    assert "".join(model.generate("the cat", 20, temperature=1.0, seed=3)) == EXPECTED[name]["generate"]
    result = lm.evaluate(DATA / name, DATA / "corpus.txt")
    expected = EXPECTED[name]["evaluate"]
    assert result.keys() == expected.keys() and result["tokens"] == expected["tokens"]
    for key in ("loss", "perplexity", "bits_per_char"):
        if key in expected:
            assert result[key] == pytest.approx(expected[key], rel=1e-6), key


def test_a_classifier_of_format_1_evaluates_and_predicts_as_it_did(tmp_path):
    result = classify.evaluate(DATA / "classify", DATA / "reviews.csv", plot=tmp_path / "cm.png")
    expected = EXPECTED["classify"]["evaluate"]
    assert {key: result[key] for key in expected} == expected and (tmp_path / "cm.png").exists()
    predictions = [p._asdict() for p in classify.predict(DATA / "classify", ["good film cat", "bad film dog"])]
    assert predictions == EXPECTED["classify"]["predict"]


def test_a_run_of_format_1_resumes(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(DATA / "lm-char", run)
    train = TrainConfig(max_steps=34, eval_every=2, lr=0.01, progress=False, tensorboard=False)
    from rnnkit.tasks.lm import LMData

    result = lm.fit(DATA / "corpus.txt", run, model=dict(embedding_size=8, hidden_size=12, num_layers=1),
                    data=LMData(batch_size=4, bptt=16), train=train, resume=True)
    assert sorted(result.losses) == [31, 32, 33, 34]
    latest = find_checkpoint(run)
    assert latest.config["format"] == 2 and latest.config["step"] == 34
    assert latest.config["task"]["vocab"] == find_checkpoint(DATA / "lm-char").config["task"]["vocab"]


def test_an_unknown_format_is_one_line(tmp_path, capsys):
    run = tmp_path / "future"
    shutil.copytree(DATA / "lm-word", run)
    config = next(run.glob("checkpoint-*")) / "config.json"
    config.write_text(config.read_text().replace('"format": 1', '"format": 3'))
    with pytest.raises(CheckpointError, match="checkpoint format 3, which this rnnkit does not read"):
        rnnkit.load(run)
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(DATA / "corpus.txt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "upgrade rnnkit" in err
