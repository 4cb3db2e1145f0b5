"""The task platform end to end: the registry dispatches every verb on the task a checkpoint
records, validation reports what ``evaluate`` reports, training stops cleanly on SIGINT with a line
saying how to resume, and bad input ends in one line with nothing half-written."""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rnnkit
from rnnkit import tasks
from rnnkit.cli import main
from rnnkit.tasks import classify, lm
from rnnkit.train import CheckpointError, TrainConfig, find_checkpoint
from test_classify import order_examples, write_csv

pytestmark = pytest.mark.usefixtures("one_thread")
SRC = str(Path(__file__).resolve().parents[1] / "src")
WORDS = "the a cat dog sat ran on under mat log house tree".split()


def text(seed: int, lines: int) -> str:
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(lines)) + "\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("platform")
    (folder / "train.txt").write_text(text(0, 150), encoding="utf-8")
    (folder / "valid.txt").write_text(text(1, 40), encoding="utf-8")
    write_csv(folder / "train.csv", *order_examples(120, 0))
    write_csv(folder / "dev.csv", *order_examples(50, 1))
    return folder


LM_FLAGS = ["--hidden-size", "16", "--embedding-size", "8", "--layers", "1", "--batch-size", "4", "--bptt", "16",
            "--lr", "0.01", "--no-tensorboard", "--no-progress"]
CLF_FLAGS = ["--text-col", "review", "--label-col", "sentiment", "--embedding-size", "8", "--hidden-size", "8",
             "--batch-size", "16", "--lr", "0.01", "--no-tensorboard", "--no-progress"]


@pytest.fixture(scope="module")
def runs(files, tmp_path_factory):
    root = tmp_path_factory.mktemp("platform-runs")
    assert main(["train", "lm", "--data", str(files / "train.txt"), "--valid", str(files / "valid.txt"),
                 "--out", str(root / "lm"), "--max-steps", "12", "--eval-every", "6", *LM_FLAGS]) == 0
    assert main(["train", "classify", "--data", str(files / "train.csv"), "--valid", str(files / "dev.csv"),
                 "--out", str(root / "clf"), "--max-steps", "10", "--eval-every", "5", *CLF_FLAGS]) == 0
    return root


def test_the_registry_knows_each_task_and_reads_a_checkpoints_task(runs):
    assert [spec.name for spec in tasks.specs()] == list(tasks.TASKS) == ["lm", "classify", "forecast", "translate",
                                                                       "speech"]
    assert tasks.task_of(runs / "lm") == "lm" and tasks.task_of(runs / "clf" / "BEST") == "classify"
    assert type(rnnkit.load(runs / "lm")).__name__ == "TrainedLanguageModel"
    assert type(rnnkit.load(runs / "clf")).__name__ == "TrainedClassifier"
    assert find_checkpoint(runs / "lm").config["format"] == 2


def test_evaluate_and_predict_dispatch_on_the_checkpoints_task(runs, files, capsys):
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(runs / "lm"), "--data", str(files / "valid.txt"), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"loss", "perplexity", "tokens", "bits_per_char"}
    assert main(["evaluate", "--checkpoint", str(runs / "clf"), "--data", str(files / "dev.csv"), "--plot",
                 str(runs / "cm.png")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("accuracy ") and f"confusion_matrix_png: {runs / 'cm.png'}" in out
    assert (runs / "cm.png").exists() and not (runs / "clf" / "confusion_matrix.png").exists()
    assert main(["predict", "--checkpoint", str(runs / "lm"), "--length", "5", "--seed", "1", "the", "a cat"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 2 and lines[0].startswith("the")
    assert main(["predict", "--checkpoint", str(runs / "clf"), "good then bad"]) == 0
    assert capsys.readouterr().out.split("\t")[0] in ("pos", "neg")


def test_a_checkpoint_of_another_task_is_one_line_naming_both(runs, files, capsys):
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(runs / "clf"), "--prompt", "the"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'classify' checkpoint" in err and "'lm'" in err
    before = (runs / "lm" / "LATEST").read_text()
    assert main(["train", "classify", "--data", str(files / "train.csv"), "--out", str(runs / "lm"), "--resume",
                 *CLF_FLAGS]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a 'lm' run, not a 'classify' one" in err
    assert (runs / "lm" / "LATEST").read_text() == before
    with pytest.raises(CheckpointError, match="'lm' checkpoint.*'classify'"):
        classify.load(runs / "lm")
    with pytest.raises(CheckpointError, match="needs a 'lm' one"):
        tasks.load(runs / "clf", task="lm")
    assert main(["evaluate", "--checkpoint", str(runs / "lm"), "--data", str(files / "valid.txt"),
                 "--text-col", "review"]) == 2
    assert "--text-col is for 'classify' checkpoints" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(runs / "lm"), "--checkpoint", str(runs / "lm"), "--data",
                 str(files / "valid.txt")]) == 1
    assert "give one checkpoint" in capsys.readouterr().err


def test_a_language_models_validation_pass_reports_what_evaluate_reports(files, tmp_path):
    data = lm.LMData(batch_size=4, bptt=16)
    result = lm.fit(files / "train.txt", tmp_path / "run", valid=files / "valid.txt", data=data,
                    model=dict(embedding_size=8, hidden_size=16, num_layers=1),
                    train=TrainConfig(max_steps=8, eval_every=8, progress=False, tensorboard=False))
    tokens = len(rnnkit.load(tmp_path / "run").vocab.encode((files / "valid.txt").read_text()))
    from rnnkit.tasks.lm.api import validation_streams

    evaluated = lm.evaluate(tmp_path / "run", files / "valid.txt", bptt=data.bptt,
                            batch_size=validation_streams(tokens, data))
    assert evaluated == result.metrics
    assert set(evaluated) == {"loss", "perplexity", "tokens", "bits_per_char"}


def test_a_classifiers_validation_pass_reports_what_evaluate_reports(files, tmp_path):
    data = classify.ClassifyData(text_col="review", label_col="sentiment", batch_size=16)
    result = classify.fit(files / "train.csv", tmp_path / "run", valid=files / "dev.csv", data=data,
                          model=dict(embedding_size=8, hidden_size=8), class_weights="balanced",
                          train=TrainConfig(max_steps=6, eval_every=6, progress=False, tensorboard=False))
    evaluated = classify.evaluate(tmp_path / "run", files / "dev.csv", plot=False)
    assert {key: evaluated[key] for key in result.metrics} == result.metrics
    assert set(result.metrics) == {"loss", "accuracy", "macro_f1", "examples"}


def test_corpus_metrics_agree_with_scikit_learn():
    import numpy as np
    import torch
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    from rnnkit.tasks.classify.metrics import (classification_metrics, multi_label_statistics, per_class,
                                               single_label_statistics)

    rng = np.random.default_rng(0)
    truth, predicted = rng.integers(0, 4, 50), rng.integers(0, 3, 50)             # class 3 never predicted
    halves = [single_label_statistics(torch.tensor(p), torch.tensor(t), 4) for p, t in
              ((predicted[:17], truth[:17]), (predicted[17:], truth[17:]))]
    totals = {key: halves[0][key] + halves[1][key] for key in halves[0]}
    metrics, scores = classification_metrics(totals), per_class(totals, list("abcd"))
    assert metrics["accuracy"] == pytest.approx(float((truth == predicted).mean()))
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, labels=range(4), average="macro",
                                                         zero_division=0))
    p, r, f, s = precision_recall_fscore_support(truth, predicted, labels=range(4), zero_division=0)
    assert [scores[c]["recall"] for c in "abcd"] == pytest.approx(r) and [scores[c]["support"] for c in "abcd"] == list(s)
    hot_truth, hot_predicted = rng.integers(0, 2, (30, 3)), rng.integers(0, 2, (30, 3))
    multi = classification_metrics(multi_label_statistics(torch.tensor(hot_predicted), torch.tensor(hot_truth)))
    assert multi["macro_f1"] == pytest.approx(f1_score(hot_truth, hot_predicted, average="macro", zero_division=0))
    assert multi["accuracy"] == pytest.approx(float((hot_truth == hot_predicted).all(1).mean()))


def run_cli(*args, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=SRC + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
               OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "rnnkit", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kwargs)


def test_ctrl_c_stops_with_a_checkpoint_and_says_how_to_resume(files, tmp_path):
    out = tmp_path / "run"
    flags = [flag for flag in LM_FLAGS if flag != "--no-progress"]
    process = run_cli("train", "lm", "--data", str(files / "train.txt"), "--out", str(out), "--max-steps", "100000",
                      "--eval-every", "100000", "--log-every", "1", "--threads", "1", *flags)
    line = ""
    while not line.startswith("step "):                              # training has begun
        line = process.stderr.readline()
        assert line or process.poll() is None, process.stderr.read()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "SIGINT: stopping after this step with a checkpoint" in stderr
    resume = [line for line in stderr.splitlines() if line.startswith("to continue: rnnkit train lm")]
    assert len(resume) == 1 and resume[0].endswith("--resume") and "Traceback" not in stderr
    assert stdout.startswith("stopped (interrupted) after ")
    step = find_checkpoint(out).config["step"]
    assert step >= 1 and "interrupted at step" in stderr
    command = shlex.split(resume[0].removeprefix("to continue: "))          # rnnkit train lm ... --resume
    again = run_cli(*command[1:], "--max-steps", str(step + 2), "--no-progress")
    stdout, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    assert find_checkpoint(out).config["step"] == step + 2


@pytest.mark.parametrize("argv", [
    ["train", "lm", "--data", "{txt}", "--out", "{out}", "--encoding", "bogus"],
    ["train", "classify", "--data", "{csv}", "--out", "{out}", "--encoding", "bogus"],
    ["evaluate", "--checkpoint", "{lm}", "--data", "{txt}", "--encoding", "bogus"],
    ["predict", "--checkpoint", "{clf}", "--input", "{txt}", "--encoding", "bogus"],
    ["train", "lm", "--data", "{txt}", "--out", "{out}", "--max-time", "0"],
    ["train", "lm", "--data", "{txt}", "--out", "{out}", "--lr", "0"],
    ["train", "lm", "--data", "{txt}", "--out", "{out}", "--device", "bogus"],
    ["evaluate", "--checkpoint", "{lm}", "--data", "{txt}", "--device", "cuda:7"],
])
def test_bad_settings_are_one_line_naming_the_flag_and_write_nothing(runs, files, tmp_path, capsys, argv):
    values = dict(txt=files / "train.txt", csv=files / "train.csv", out=tmp_path / "out", lm=runs / "lm",
                  clf=runs / "clf")
    argv = [arg.format(**values) for arg in argv]
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    flag = argv[-2]
    assert err.count("\n") == 1 and err.startswith(f"rnnkit: error: argument {flag}: ") and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_values_that_are_not_numbers_are_usage_errors(runs, capsys):
    for argv in (["generate", "--checkpoint", str(runs / "lm"), "--prompt", "the", "--temperature", "nan"],
                 ["train", "lm", "--data", "x", "--out", "y", "--batch-size", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and argv[-2] in err


def test_flags_that_would_be_ignored_are_refused(runs, files, tmp_path, capsys):
    capsys.readouterr()
    assert main(["train", "classify", "--data", "digits", "--out", str(tmp_path / "d"), "--tokens", "bpe"]) == 1
    assert "--tokens is for text, and --data digits reads numeric sequences" in capsys.readouterr().err
    assert main(["train", "classify", "--data", str(files / "train.csv"), "--out", str(tmp_path / "t"),
                 "--init-from", str(runs / "lm"), "--hidden-size", "7", *CLF_FLAGS[:4]]) == 1
    err = capsys.readouterr().err
    assert "hidden_size 7: set by the data and the language model (--init-from) to 16" in err
    assert not (tmp_path / "t").exists() and not (tmp_path / "d").exists()
    assert main(["train", "lm", "--data", str(files / "train.txt"), "--out", str(runs / "lm"), "--resume",
                 "--tokens", "word", "--max-steps", "13"]) == 1
    assert "--tokens word differs from the run's char" in capsys.readouterr().err
    assert find_checkpoint(runs / "lm").config["step"] == 12


def test_out_directories_that_cannot_take_a_run(files, tmp_path, capsys):
    train = ["train", "lm", "--data", str(files / "train.txt"), "--max-steps", "2", *LM_FLAGS]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    (tmp_path / "afile").write_text("x")
    capsys.readouterr()
    for out, message in [(tmp_path / "notes", "is not empty (it holds mine.txt)"), (tmp_path / "afile", "is a file")]:
        assert main(train + ["--out", str(out)]) == 1
        assert message in capsys.readouterr().err
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me" and os.listdir(tmp_path / "notes") == ["mine.txt"]
    assert main(train + ["--out", str(tmp_path / "new"), "--resume"]) == 1
    assert "holds no checkpoint to resume from: start the run without --resume" in capsys.readouterr().err
    short = tmp_path / "short.txt"
    short.write_text("hi\n")
    assert main(["train", "lm", "--data", str(short), "--out", str(tmp_path / "run"), "--max-steps", "2"]) == 1
    assert "too few" in capsys.readouterr().err and not (tmp_path / "run").exists()      # no tokens/ left behind


def test_checkpoints_follow_the_umask(files, tmp_path):
    previous = os.umask(0o022)
    try:
        assert main(["train", "lm", "--data", str(files / "train.txt"), "--out", str(tmp_path / "run"),
                     "--max-steps", "2", "--eval-every", "2", *LM_FLAGS]) == 0
    finally:
        os.umask(previous)
    checkpoint = find_checkpoint(tmp_path / "run").path
    mode = lambda path: stat.S_IMODE(path.stat().st_mode)                     # noqa: E731
    assert mode(checkpoint) == 0o755
    for path in [tmp_path / "run" / "LATEST", tmp_path / "run" / "BEST", *checkpoint.iterdir()]:
        assert mode(path) == 0o644, path


def test_help_and_version_do_not_import_torch():
    code = ("import sys\nfrom rnnkit.cli import main\nfor argv in (['--help'], ['--version'], ['train', 'lm', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\nprint('torch' in sys.modules, file=sys.stderr)")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=SRC))
    assert proc.returncode == 0 and proc.stderr.strip() == "False", proc.stderr
    assert "--max-time SECONDS" in proc.stdout and "--adaptive-softmax CUTOFFS" in proc.stdout
    assert time.perf_counter() - started < 30                         # a generous bound: no torch import


def test_characters_a_model_never_saw(runs, files, tmp_path, capsys):
    odd = tmp_path / "odd.txt"
    odd.write_bytes("the cat\r\nsat on € the 中 mat\r\n".encode("utf-8"))
    with pytest.warns(UserWarning, match="2 characters not in the vocabulary"):
        result = lm.evaluate(runs / "lm", odd)
    assert result["tokens"] > 0
    model = rnnkit.load(runs / "lm")
    with pytest.warns(UserWarning, match="read as <unk>: '€'"):
        assert len("".join(model.generate("the €", 5, seed=0))) == 5
    with pytest.raises(ValueError, match="not in the vocabulary"):
        list(model.generate("€€", 5))
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(runs / "lm"), "--data", str(odd)]) == 0
    assert capsys.readouterr().err == (f"rnnkit: warning: {odd}: 2 characters not in the vocabulary ('€', '中') "
                                       f"were read as <unk>\n")
