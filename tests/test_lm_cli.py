"""`rnnkit train lm`, `evaluate`, `generate` and `rnnkit.load`, end to end on generated text."""

import json
import random

import pytest

import rnnkit
from rnnkit.cli import main

WORDS = "the a cat dog sat ran on under mat log house tree over quickly slowly big small red".split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10)))
                              for _ in range(300)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lm"
    code = main(["train", "lm", "--data", str(corpus), "--out", str(out), "--hidden-size", "48",
                 "--embedding-size", "24", "--layers", "1", "--max-steps", "60", "--eval-every", "30",
                 "--batch-size", "8", "--bptt", "24", "--lr", "0.01"])
    assert code == 0
    return out


def test_train_writes_checkpoints_and_log(run):
    assert (run / "LATEST").exists() and (run / "log.csv").read_text().count("\n") == 3


def test_evaluate_json_reports_loss_perplexity_and_bits_per_char(run, corpus, capsys):
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(corpus), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["loss"] < 3.0 and result["perplexity"] == pytest.approx(2.718281828 ** result["loss"])
    assert result["bits_per_char"] == pytest.approx(result["loss"] / 0.6931471805599453)


def test_generate_streams_after_the_prompt_and_greedy_is_deterministic(run, capsys):
    assert main(["generate", "--checkpoint", str(run), "--prompt", "the cat", "--length", "30", "--temperature", "0"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("the cat") and len(first.rstrip("\n")) == len("the cat") + 30
    main(["generate", "--checkpoint", str(run), "--prompt", "the cat", "--length", "30", "--temperature", "0"])
    assert capsys.readouterr().out == first
    assert len("".join(rnnkit.load(run).generate("the", 10, seed=1))) == 10


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"ok text \xff more", "byte 0xff at offset 8; pass --encoding"),
    (b"hi\n", "too few"),
])
def test_bad_training_text_is_one_line_and_writes_nothing(tmp_path, capsys, content, message):
    data = tmp_path / "data.txt"
    data.write_bytes(content)
    out = tmp_path / "out"
    assert main(["train", "lm", "--data", str(data), "--out", str(out), "--max-steps", "5"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (out / "LATEST").exists()


def test_used_out_dir_and_changed_model_are_refused_without_touching_the_run(run, corpus, capsys):
    before = (run / "LATEST").read_text()
    assert main(["train", "lm", "--data", str(corpus), "--out", str(run), "--max-steps", "5"]) == 1
    assert "already holds a training run" in capsys.readouterr().err
    assert main(["train", "lm", "--data", str(corpus), "--out", str(run), "--resume", "--hidden-size", "16",
                 "--layers", "1", "--max-steps", "80"]) == 1
    assert "different model/vocabulary" in capsys.readouterr().err
    assert (run / "LATEST").read_text() == before


@pytest.mark.parametrize("argv, message", [
    (["--prompt", "ZZZ"], "not in the vocabulary"),
    (["--prompt", "a", "--length", "-3"], "--length"),
])
def test_bad_generation_requests(run, capsys, argv, message):
    code = main(["generate", "--checkpoint", str(run)] + argv) if "--length" not in argv else None
    if code is None:
        with pytest.raises(SystemExit) as exit_info:
            main(["generate", "--checkpoint", str(run)] + argv)
        code = exit_info.value.code
    assert code in (1, 2) and message in capsys.readouterr().err


def test_missing_checkpoint(tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(tmp_path / "nope"), "--prompt", "a"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_word_level_model_trains_and_continues_a_prompt(corpus, tmp_path, capsys):
    out = tmp_path / "words"
    assert main(["train", "lm", "--data", str(corpus), "--out", str(out), "--tokens", "word", "--hidden-size", "32",
                 "--embedding-size", "16", "--layers", "1", "--max-steps", "20", "--eval-every", "20",
                 "--batch-size", "4", "--bptt", "8"]) == 0
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(out), "--prompt", "the cat", "--length", "6", "--seed", "0"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("the cat") and text[len("the cat")] in " \n"      # the next word is separated
    generated = text[len("the cat"):].split()
    assert 1 <= len(generated) <= 6 and set(generated) <= set(WORDS) | {"<unk>"}
