"""`rnnkit export` on small trained checkpoints of each exportable task, its built-in check, and
its refusals (one line, non-zero exit, no file left)."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit.cli import main
from rnnkit.export import Exportable, check, export, write
from rnnkit.tasks import classify, forecast, lm, speech
from rnnkit.tasks.classify import ClassifyData
from rnnkit.tasks.forecast import ForecastData
from rnnkit.tasks.lm import LMData
from rnnkit.tasks.speech import SpeechData
from rnnkit.tasks.speech.synthetic import write_words
from rnnkit.train import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = dict(max_steps=3, eval_every=3, progress=False, tensorboard=False)
WORDS = "the a cat dog sat ran on under mat log".split()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny checkpoint of each task rnnkit export knows: a 2-layer LSTM language model, a GRU text
    classifier with max/mean/last pooling, a words-head and a CTC speech model (conv and stack), and
    a direct-decoder forecaster of two input lengths with series embeddings and a log transform."""
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
                 model=dict(hidden_size=8, num_layers=1, id_embedding=2), train=TrainConfig(**TRAIN), ensemble=2)
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


def test_an_onnx_export_the_exporter_refuses_is_one_line_naming_the_reason(tmp_path):
    pytest.importorskip("onnxscript", reason="onnxscript is in the test extra; install rnnkit[test]")
    import rnnkit.nn as rnn

    class Projected(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnn.LSTM(3, 5, proj_size=2)

        def forward(self, x):
            return self.rnn(x)[0]

    exportable = Exportable(Projected().eval(), lambda b, t, g: (torch.randn(t, b, 3, generator=g),), ["x"],
                            ["y"], {"x": {0: "length", 1: "batch"}})
    with pytest.raises(ValueError, match=r"^ONNX export failed: .*no projection \(proj_size\)") as info:
        write(exportable, tmp_path / "p.onnx", "onnx")
    assert "\n" not in str(info.value)
