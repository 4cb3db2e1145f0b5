"""`rnnkit export` on small trained checkpoints of each exportable task, its built-in check, and
its refusals (one line, non-zero exit, no file left)."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit.cli import main
from rnnkit.export import Exportable, check, export, runner, write
from rnnkit.tasks import classify, forecast, lm, speech, translate
from rnnkit.tasks.classify import ClassifyData
from rnnkit.tasks.forecast import ForecastData
from rnnkit.tasks.lm import LMData
from rnnkit.tasks.speech import SpeechData
from rnnkit.tasks.speech.synthetic import write_words
from rnnkit.tasks.translate import TranslateData
from rnnkit.train import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = dict(max_steps=3, eval_every=3, progress=False, tensorboard=False)
WORDS = "the a cat dog sat ran on under mat log".split()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny checkpoint of each task rnnkit export knows: a 2-layer LSTM language model, a GRU text
    classifier with max/mean/last pooling, a words-head and a CTC speech model (conv and stack), and
    a direct-decoder forecaster of two input lengths with series embeddings, a log transform and the
    decoder reading its lag, and
    two translators: a GRU with general attention, and an LSTM with additive attention and input
    feeding."""
    root = tmp_path_factory.mktemp("export")
    rng = random.Random(0)
    text = root / "text.txt"
    text.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(60)) + "\n")
    out = {"lm": root / "lm"}
    lm.fit(text, out["lm"], data=LMData(batch_size=4, bptt=8),
           model=dict(cell="lstm", embedding_size=8, hidden_size=12, num_layers=2), train=TrainConfig(**TRAIN))
    table = root / "reviews.csv"
    table.write_text("text,label\n" + "".join(f"{' '.join(rng.choice(WORDS) for _ in range(rng.randint(2, 9)))},"
                                               f"{rng.choice('pn')}\n" for _ in range(40)))
    out["classify"] = root / "classify"
    classify.fit(table, out["classify"], data=ClassifyData(batch_size=8),
                 model=dict(cell="gru", embedding_size=8, hidden_size=10), train=TrainConfig(**TRAIN))
    write_words(root / "words", per_speaker=2, sample_rate=8000, seed=0)
    out["speech_words"] = root / "speech-words"
    speech.fit(root / "words", out["speech_words"], data=SpeechData(sample_rate=8000, batch_size=8),
               model=dict(head="words", subsample="conv", conv_channels=4, hidden_size=8, num_layers=1),
               train=TrainConfig(**TRAIN))
    out["speech_ctc"] = root / "speech-ctc"
    speech.fit(root / "words", out["speech_ctc"], data=SpeechData(sample_rate=8000, batch_size=8, connected=16,
                                                                     connected_valid=4, units="words"),
               model=dict(head="ctc", hidden_size=8, num_layers=2, stack=3, bidirectional=False),
               train=TrainConfig(**TRAIN))
    hours = pd.date_range("2026-01-01", periods=24 * 6, freq="h")
    series = pd.concat([pd.DataFrame({"unique_id": f"s{k}", "ds": hours,
                                      "y": 10 + k + np.sin(np.arange(len(hours)) * 2 * np.pi / 24)})
                        for k in range(4)])
    out["forecast"] = root / "forecast"
    forecast.fit(series, out["forecast"], data=ForecastData(horizon=6, input_size=24, batch_size=8, log=True),
                 model=dict(hidden_size=8, num_layers=1, id_embedding=2, decoder_lags=True), train=TrainConfig(**TRAIN),
                 ensemble=2)
    pairs = root / "pairs.tsv"
    sentences = [[rng.choice(WORDS) for _ in range(rng.randint(2, 7))] for _ in range(60)]
    pairs.write_text("".join(f"{' '.join(s)}\t{' '.join(reversed(s)).upper()}\n" for s in sentences))
    for name, options in (("translate_gru", dict(cell="gru", attention="general")),
                          ("translate_lstm", dict(cell="lstm", attention="additive", input_feeding=True,
                                                  decoder_layers=2, tie_embeddings=False))):
        out[name] = root / name
        translate.fit(pairs, out[name], data=TranslateData(vocab_size=60, batch_size=8),
                      model=dict(options, embedding_size=8, hidden_size=10, dropout=0.0), train=TrainConfig(**TRAIN))
    return out


@pytest.mark.parametrize("task", ["lm", "classify", "speech_words", "speech_ctc", "forecast"])
@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_writes_a_checked_file_of_each_task(runs, task, fmt, tmp_path, capsys):
    output = tmp_path / f"model.{fmt}"
    assert main(["export", "--checkpoint", str(runs[task]), "--format", fmt, "--output", str(output)]) == 0
    said = capsys.readouterr().out
    assert output.is_file() and f"wrote {output} ({fmt}); largest difference from PyTorch" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == [output.name]             # no partial file left
    difference = float(said.split("PyTorch ")[1].split()[0])
    assert difference <= 1e-4


def test_a_translator_exports_as_an_encoder_and_a_decoder_step_and_refuses_to_overwrite_either(runs, tmp_path,
                                                                                               capsys):
    fmt = "pt2"                          # ONNX: the greedy search below runs both parts in onnxruntime
    output = tmp_path / f"mt.{fmt}"
    parts = [tmp_path / f"mt.encoder.{fmt}", tmp_path / f"mt.decoder.{fmt}"]
    assert main(["export", "--checkpoint", str(runs["translate_gru"]), "--format", fmt, "--output", str(output)]) == 0
    assert f"wrote {parts[0]}, {parts[1]} ({fmt})" in capsys.readouterr().out
    assert sorted(tmp_path.iterdir()) == sorted(parts)
    parts[0].unlink()
    parts[1].write_text("an earlier export")                      # one part there is enough to refuse
    assert main(["export", "--checkpoint", str(runs["translate_gru"]), "--format", fmt, "--output", str(output)]) == 1
    assert f"--output {parts[1]} exists; pass --force" in capsys.readouterr().err
    assert parts[1].read_text() == "an earlier export" and not parts[0].exists()


def onnx_parts(export_path):
    """The two ONNX parts as functions of tensors returning tuples of tensors (onnxruntime sessions)."""
    runs = [runner(export_path.with_name(f"{export_path.stem}.{part}.onnx"), "onnx") for part in ("encoder", "decoder")]
    return [lambda *inputs, run=run: run(inputs) for run in runs]


def greedy(encoder, decoder, source, lengths, memory_names, state_count, config, steps):
    """Greedy decoding driven outside the programs, as a runtime would: the encoder's outputs (memory,
    then the first state) feed the first decoder step, each step's new state the next; <pad> and
    <bos> are never chosen (as in rnnkit's search)."""
    outputs = encoder(source, lengths)
    memory, state = list(outputs[:len(memory_names)]), list(outputs[len(memory_names):])
    tokens = torch.full((source.shape[0],), config.bos_id)
    found, done = [[] for _ in range(source.shape[0])], torch.zeros(source.shape[0], dtype=torch.bool)
    for _ in range(steps):
        result = decoder(tokens, *state, *memory)
        log_probs = result[0].clone()
        log_probs[:, [config.pad_id, config.bos_id]] = float("-inf")
        tokens, state = log_probs.argmax(-1), list(result[1:1 + state_count])
        for row in (~done).nonzero().flatten().tolist():
            if int(tokens[row]) != config.eos_id:
                found[row].append(int(tokens[row]))
        done |= tokens == config.eos_id
        if bool(done.all()):
            break
    return found


@pytest.mark.parametrize("name", ["translate_gru", "translate_lstm"])
def test_greedy_search_through_the_onnx_parts_translates_as_pytorch_does(runs, name, tmp_path):
    from rnnkit.tasks import load
    from rnnkit.tasks.translate.search import beam_search

    trained = load(runs[name])
    export(runs[name], tmp_path / "mt.onnx", "onnx")
    parts = translate.exportable(trained)
    memory_names = [n for n in parts["encoder"].output_names if n in ("keys", "mask", "projected")]
    state_count = len(parts["encoder"].output_names) - len(memory_names)
    ids = trained.encode(["the cat sat on the mat", "a dog", "log under the a cat ran"])
    lengths = torch.tensor([len(row) for row in ids])
    source = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for row, sentence in enumerate(ids):
        source[row, :len(sentence)] = torch.tensor(sentence)
    found = greedy(*onnx_parts(tmp_path / "mt.onnx"), source, lengths, memory_names, state_count,
                   trained.model.config, steps=11)
    # beam 1 without a length penalty is greedy; at 11 subwords it may only end the sentence
    want = beam_search(trained.model, source, lengths, beam=1, alpha=0.0, max_length_ratio=0.0, extra_length=11)
    assert found == [hypotheses[0].tokens for hypotheses in want]
    assert any(len(tokens) > 2 for tokens in found)                  # decoded sentences, not one token


def test_an_onnx_file_whose_weights_were_changed_fails_the_check(runs, tmp_path):
    import onnx
    from onnx import numpy_helper

    from rnnkit.tasks import load

    exportable = classify.exportable(load(runs["classify"]))
    path = tmp_path / "model.onnx"
    with torch.no_grad():
        write(exportable, path, "onnx")
        assert check(exportable, path, "onnx") <= 1e-4
        graph = onnx.load(str(path))
        biggest = max(graph.graph.initializer, key=lambda t: np.prod(t.dims))
        corrupted = numpy_helper.to_array(biggest) * 1.01
        biggest.CopyFrom(numpy_helper.from_array(corrupted, biggest.name))
        onnx.save(graph, str(path))
        assert check(exportable, path, "onnx") > 1e-4


def test_a_mismatch_is_an_error_and_writes_nothing(runs, tmp_path, monkeypatch, capsys):
    import rnnkit.export as exporting

    monkeypatch.setattr(exporting, "check", lambda exportable, path, fmt: 0.5)
    output = tmp_path / "model.pt2"
    assert main(["export", "--checkpoint", str(runs["lm"]), "--format", "pt2", "--output", str(output)]) == 1
    err = capsys.readouterr().err.strip()
    assert "differs from PyTorch by 0.5 (more than 0.0001): nothing was written" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_task_without_an_exportable_model_and_a_bad_output_are_refused_in_one_line(runs, tmp_path, capsys,
                                                                                      monkeypatch):
    assert main(["export", "--checkpoint", str(runs["lm"]), "--format", "onnx", "--output", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err
    kept = tmp_path / "kept.pt2"
    kept.write_text("an earlier export")
    assert main(["export", "--checkpoint", str(runs["lm"]), "--format", "pt2", "--output", str(kept)]) == 1
    assert "exists; pass --force" in capsys.readouterr().err and kept.read_text() == "an earlier export"
    kept.unlink()
    assert main(["export", "--checkpoint", str(tmp_path / "nothing"), "--format", "pt2",
                 "--output", str(kept)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    monkeypatch.delattr("rnnkit.tasks.lm.api.exportable")
    with pytest.raises(ValueError, match="does not support 'lm' checkpoints yet"):
        export(runs["lm"], tmp_path / "m.onnx", "onnx")
    assert list(tmp_path.iterdir()) == []


def test_the_exported_language_model_carries_its_state_like_pytorch(runs, tmp_path):
    from rnnkit.tasks import load

    trained = load(runs["lm"])
    exportable = lm.exportable(trained)
    assert isinstance(exportable, Exportable) and exportable.input_names == ["tokens", "h0", "c0", "h1", "c1"]
    export(runs["lm"], tmp_path / "lm.pt2", "pt2")
    program = torch.export.load(str(tmp_path / "lm.pt2")).module()
    tokens = torch.tensor([[1, 3], [2, 2], [3, 1]])                                      # (T=3, B=2)
    zeros = [torch.zeros(1, 2, 12) for _ in range(4)]
    logits, *state = program(tokens, *zeros)
    with torch.no_grad():
        want, want_state = trained.model(tokens, None)
    torch.testing.assert_close(logits, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state[2], want_state[1][0], rtol=1e-5, atol=1e-5)


@torch.library.custom_op("rnnkit_test::doubled", mutates_args=())
def _doubled(x: torch.Tensor) -> torch.Tensor:
    """An operator with no ONNX translation."""
    return x * 2


_doubled.register_fake(lambda x: torch.empty_like(x))


def test_an_onnx_export_the_exporter_refuses_is_one_line_naming_the_reason(tmp_path):
    pytest.importorskip("onnxscript", reason="onnxscript is in the test extra; install rnnkit[test]")
    import rnnkit.nn as rnn

    class Untranslatable(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn.LSTM(3, 5)

        def forward(self, x):
            return _doubled(self.rnn(x)[0])

    exportable = Exportable(Untranslatable().eval(), lambda b, t, g: (torch.randn(t, b, 3, generator=g),), ["x"],
                            ["y"], {"x": {0: "length", 1: "batch"}})
    with pytest.raises(ValueError, match=r"^ONNX export failed: .*doubled") as info:
        write(exportable, tmp_path / "p.onnx", "onnx")
    assert "\n" not in str(info.value)
