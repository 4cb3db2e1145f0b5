"""`rnnkit train classify`, `evaluate` and `predict` end to end, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
import torch

import rnnkit

from rnnkit.cli import main
from test_classify import order_examples, write_csv

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return folder, write_csv(folder / "train.csv", *order_examples(400, 0)), \
        write_csv(folder / "dev.csv", *order_examples(100, 1))


def train(data, valid, out, *extra):
    return main(["train", "classify", "--data", str(data), "--valid", str(valid), "--out", str(out),
                 "--text-col", "review", "--label-col", "sentiment", "--embedding-size", "16",
                 "--hidden-size", "24", "--lr", "0.01", *extra])


@pytest.fixture(scope="module")
def run(files, tmp_path_factory):
    _, data, valid = files
    out = tmp_path_factory.mktemp("runs") / "clf"
    assert train(data, valid, out, "--max-epochs", "4", "--pooling", "max+last", "--class-weights", "balanced",
                 "--word-dropout", "0.1") == 0
    return out


def test_train_evaluate_json(run, files, capsys):
    assert (run / "LATEST").exists()
    assert rnnkit.load(run).model.config.word_dropout == 0.1
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(files[2]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] >= 0.9 and 0.9 <= result["macro_f1"] <= 1.0
    assert result["per_class"]["pos"]["support"] + result["per_class"]["neg"]["support"] == 100
    assert (run / "confusion_matrix.png").exists()
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(files[2])]) == 0
    assert capsys.readouterr().out.startswith("accuracy ")
    (run / "confusion_matrix.png").unlink()
    assert main(["evaluate", "--checkpoint", str(run / "BEST"), "--data", str(files[2]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] >= 0.9
    assert (run / "confusion_matrix.png").exists()          # RUN/BEST: beside the run's checkpoints


def test_predict_texts_file_and_explain(run, tmp_path, capsys):
    assert main(["predict", "--checkpoint", str(run), "the good film was bad", "bad then good"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["pos", "neg"]
    assert all(0.5 <= float(line.split("\t")[1]) <= 1.0 for line in lines)
    source, target = tmp_path / "in.txt", tmp_path / "out.jsonl"
    source.write_text("good and bad\n\nbad and good\n", encoding="utf-8")
    argv = ["predict", "--checkpoint", str(run), "--input", str(source), "--output", str(target), "--explain"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["label"] for r in rows] == ["pos", "neg"] and rows[0]["text"] == "good and bad"
    assert [t for t, _ in rows[0]["explanation"]["tokens"]] == ["good", "and", "bad"]
    before = target.read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(argv) == 2 and "--force" in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == before
    assert main(argv + ["--force"]) == 0


def test_ensemble_evaluate_and_predict(run, files, tmp_path, capsys):
    """Several --checkpoint: the mean of the classifiers' probabilities."""
    from rnnkit.tasks.classify import Ensemble, load

    _, data, valid = files
    second = tmp_path / "second"
    assert train(data, valid, second, "--max-epochs", "2", "--seed", "7", "--cell", "gru") == 0
    capsys.readouterr()
    both = ["--checkpoint", str(run), "--checkpoint", str(second)]
    assert main(["evaluate", *both, "--data", str(valid), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] >= 0.9
    assert (run / "confusion_matrix_ensemble.png").exists()       # beside the first member's checkpoints
    texts = ["the good film was bad", "bad then good"]
    ensemble = load([run, second])
    assert isinstance(ensemble, Ensemble)
    mean = (load(run).probabilities_of(texts) + load(second).probabilities_of(texts)) / 2
    assert torch.allclose(ensemble.probabilities_of(texts), mean)
    assert [p.label for p in ensemble.predict(texts)] == ["pos", "neg"]
    assert main(["predict", *both, *texts]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["pos", "neg"]
    assert main(["predict", *both, "--explain", "good"]) == 2
    assert "one --checkpoint" in capsys.readouterr().err
    digits = tmp_path / "digits"
    assert main(["train", "classify", "--data", "digits", "--out", str(digits), "--hidden-size", "8",
                 "--max-steps", "2"]) == 0
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(run), "--checkpoint", str(digits), "good"]) == 1
    error = capsys.readouterr().err.strip()
    assert "same labels" in error and len(error.splitlines()) == 1


def test_digits_and_numeric_sequences(tmp_path, capsys):
    assert main(["train", "classify", "--data", "digits", "--out", str(tmp_path / "d"), "--hidden-size", "16",
                 "--max-steps", "5"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "d"), "--data", "digits", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 180
    rows = ["id,t,x,y,label"] + [f"s{i},{t},{i * t % 5},{t},{'up' if i % 2 else 'down'}"
                                  for i in range(20) for t in range(2 + i % 4)]
    (tmp_path / "seq.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert main(["train", "classify", "--sequences", "--data", str(tmp_path / "seq.csv"), "--out",
                 str(tmp_path / "s"), "--hidden-size", "8", "--max-steps", "3"]) == 0
    assert main(["predict", "--checkpoint", str(tmp_path / "s"), "some text"]) == 1
    assert "reads numeric sequences" in capsys.readouterr().err


BAD = [
    ("train.csv", b"text,label\nfine,a\n", "has no column 'review'; its columns are: 'text', 'label'"),
    ("train.csv", b"", "is empty"),
    ("train.csv", b"review,sentiment\nok \xff,a\nfine,b\n", "byte 0xff"),
    ("train.csv", b"review,sentiment\ngood,a\nbad,a\n", "only one class"),
    ("dev.csv", None, "never occurs in the training data"),
]


@pytest.mark.parametrize("name, content, message", BAD)
def test_bad_input_is_one_line_and_writes_nothing(files, tmp_path, capsys, name, content, message):
    folder, data, valid = files
    if content is not None:
        data = tmp_path / name
        data.write_bytes(content)
    else:                                          # a validation label the training data never had
        valid = write_csv(tmp_path / name, ["good bad", "bad good"], ["pos", "maybe"])
    out = tmp_path / "out"
    assert train(data, valid, out, "--max-steps", "2") == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("rnnkit: error:")
    assert not out.exists()


def test_used_out_dir_and_bad_flags(run, files, tmp_path, capsys):
    before = (run / "LATEST").read_text()
    assert train(files[1], files[2], run, "--max-steps", "2") == 1
    assert "already holds a training run" in capsys.readouterr().err
    assert (run / "LATEST").read_text() == before
    assert train(files[1], files[2], tmp_path / "o", "--pooling", "sum", "--max-steps", "2") == 1
    assert "pooling" in capsys.readouterr().err
    assert train(files[1], files[2], tmp_path / "o", "--word-dropout", "1", "--max-steps", "2") == 1
    assert "word_dropout" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main(["predict", "--checkpoint", str(run)]) == 2
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none"), "--data", str(files[2])]) == 1
    assert "does not exist" in capsys.readouterr().err
