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


def _train(corpus, out, *extra):
    return main(["train", "lm", "--data", str(corpus), "--out", str(out), "--hidden-size", "16",
                 "--embedding-size", "8", "--layers", "1", "--max-steps", "4", "--eval-every", "4",
                 "--batch-size", "4", "--bptt", "8", *extra])


def test_bpe_model_trains_evaluates_in_bits_per_char_and_generates_words(corpus, tmp_path, capsys):
    out = tmp_path / "bpe"
    assert main(["train", "lm", "--data", str(corpus), "--out", str(out), "--tokens", "bpe", "--vocab-size", "60",
                 "--hidden-size", "32", "--embedding-size", "16", "--layers", "1", "--max-steps", "40",
                 "--eval-every", "40", "--batch-size", "8", "--bptt", "12", "--lr", "0.01"]) == 0
    assert len(rnnkit.load(out).vocab) == 60
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(corpus), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    chars_per_token = result["loss"] / 0.6931471805599453 / result["bits_per_char"]
    assert 1.5 < chars_per_token < 6                                    # subwords of a few characters
    assert main(["generate", "--checkpoint", str(out), "--prompt", "the cat", "--length", "20", "--seed", "0"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("the cat") and "  " not in text and "\u2581" not in text


def test_regulariser_flags_reach_the_model_and_bad_values_are_one_line(corpus, tmp_path, capsys):
    out = tmp_path / "reg"
    assert _train(corpus, out, "--input-dropout", "0.2", "--embedding-dropout", "0.1", "--init-range", "0.05",
                  "--random-length") == 0
    model = rnnkit.load(out).config["task"]["model"]
    assert (model["input_dropout"], model["embedding_dropout"], model["init_range"]) == (0.2, 0.1, 0.05)
    for flag, value, field in [("--input-dropout", "1.5", "input_dropout"),
                               ("--embedding-dropout", "-0.1", "embedding_dropout"),
                               ("--init-range", "0", "init_range")]:
        assert _train(corpus, tmp_path / "bad", flag, value) == 1
        err = capsys.readouterr().err
        assert field in err and err.count("\n") == 1
        assert not (tmp_path / "bad").exists()                           # refused before reading the text


def test_optimizer_schedule_and_clip_flags_reach_the_trainer(corpus, tmp_path, capsys):
    out = tmp_path / "sgd"
    assert _train(corpus, out, "--optimizer", "sgd", "--lr", "1", "--schedule", "plateau", "--clip", "0") == 0
    train = rnnkit.load(out).config["train"]
    assert (train["optimizer"], train["schedule"], train["clip_grad_norm"]) == ("sgd", "plateau", None)
    assert _train(corpus, tmp_path / "bad", "--clip", "-1") == 1
    assert "clip_grad_norm" in capsys.readouterr().err
    assert main(["train", "lm", "--data", str(corpus), "--out", str(tmp_path / "bad"), "--max-epochs", "1",
                 "--schedule", "cosine"]) == 1
    assert "cosine" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        _train(corpus, tmp_path / "bad", "--optimizer", "adam")
    assert exit_info.value.code == 2 and "--optimizer" in capsys.readouterr().err
    assert _train(corpus, tmp_path / "bad", "--vocab-size", "100") == 1                # characters: every one
    assert "vocab_size" in capsys.readouterr().err
