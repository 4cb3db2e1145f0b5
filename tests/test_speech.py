"""Speech recognition end to end on synthetic spoken "words" (tone, chirp and noise patterns said by
three voices): a word classifier, a streaming CTC recogniser of connected words, the command line,
and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.tasks import speech
from rnnkit.tasks.speech import SpeechData
from rnnkit.tasks.speech.api import stream_file
from rnnkit.tasks.speech.audio import write_wav
from rnnkit.tasks.speech.digits import connected_utterances
from rnnkit.tasks.speech.synthetic import write_words
from rnnkit.train import TrainConfig

RATE = 8000
TRAIN = dict(lr=5e-3, schedule="cosine", warmup_steps=20, progress=False, tensorboard=False, clip_grad_norm=1.0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Training recordings (seed 0) and test recordings (seed 1: new takes by the same voices)."""
    root = tmp_path_factory.mktemp("speech")
    write_words(root / "train", per_speaker=8, sample_rate=RATE, seed=0)
    write_words(root / "test", per_speaker=3, sample_rate=RATE, seed=1)
    return root


@pytest.fixture(scope="module")
def word_run(corpus):
    out = corpus / "words-run"
    speech.fit(corpus / "train", out, data=SpeechData(sample_rate=RATE, batch_size=16),
               model=dict(head="words", hidden_size=48, num_layers=1, dropout=0.0),
               train=TrainConfig(max_steps=250, eval_every=250, **TRAIN))
    return out


@pytest.fixture(scope="module")
def ctc_run(corpus):
    """A unidirectional word-unit CTC recogniser of connected words (2-7 per utterance), with global
    feature normalisation: the model that streams."""
    out = corpus / "ctc-run"
    data = SpeechData(sample_rate=RATE, batch_size=16, connected=200, connected_valid=30, units="words",
                      normalisation="global")
    speech.fit(corpus / "train", out, data=data,
               model=dict(head="ctc", hidden_size=64, num_layers=2, stack=3, bidirectional=False, dropout=0.0),
               train=TrainConfig(max_steps=700, eval_every=700, **TRAIN))
    return out


def test_word_classifier_learns_the_words(word_run, corpus, tmp_path):
    png = tmp_path / "confusion.png"
    result = speech.evaluate(word_run / "BEST", corpus / "test", confusion_png=str(png))
    assert result["examples"] == 6 * 3 * 3
    assert result["accuracy"] >= 0.95, result
    assert png.stat().st_size > 1000
    assert speech.transcribe(word_run / "BEST", [corpus / "test" / "4_bob_0.wav"]) == ["4"]


def test_ctc_transcribes_connected_words_of_unseen_recordings(ctc_run, corpus):
    result = speech.evaluate(ctc_run / "BEST", corpus / "test", connected=40, connected_seed=9)
    assert result["utterances"] == 40 and result["words"] > 80
    assert result["wer"] <= 0.05, result


def _test_utterances(corpus, count=4, seed=5):
    recordings = [(speech.read_audio(p, RATE), p.name[0]) for p in sorted((corpus / "test").glob("*.wav"))]
    return connected_utterances(recordings, count, seed, sample_rate=RATE)


def test_streaming_gives_the_offline_transcript(ctc_run, corpus):
    trained = speech.load(ctc_run / "BEST")
    for utterance in _test_utterances(corpus):
        offline = trained.recognise([utterance.wave])[0].text
        for chunk_ms in (100.0, 37.0):
            final, partials, stream = stream_file(trained, utterance.wave, chunk_ms)
            assert final == offline
            for _, text in partials:                                   # partial words never change later
                assert final.split()[:len(text.split())] == text.split()
            assert len(stream.latencies) == -(-len(utterance.wave) // stream.chunk_samples())


def test_padding_never_changes_the_outputs(ctc_run, corpus):
    trained = speech.load(ctc_run / "BEST")
    short, long = (u.wave for u in _test_utterances(corpus, 2))
    alone = trained.outputs([short])[0]
    together = trained.outputs([short, long])[0]
    torch.testing.assert_close(alone, together, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("subsample", ["stack", "conv", "none"])
@pytest.mark.parametrize("head", ["ctc", "words"])
def test_every_subsampling_keeps_padding_out(subsample, head):
    """An untrained model of each shape: an utterance alone and inside a longer padded batch give the
    same outputs, and the encoder steps are ``subsampled_lengths``."""
    from rnnkit.tasks.speech.config import SpeechModel
    from rnnkit.tasks.speech.model import AcousticModel, subsampled_lengths

    torch.manual_seed(0)
    config = SpeechModel(head=head, subsample=subsample, stack=3, cell="gru", hidden_size=16, num_layers=2,
                         dropout=0.0, conv_channels=4, input_size=10, num_classes=5)
    model = AcousticModel(config).eval()
    lengths = torch.tensor([23, 40])
    features = torch.randn(2, 40, 10)
    features[0, 23:] = 0
    with torch.no_grad():
        batch, steps = model(features, lengths)
        alone, steps_alone = model(features[:1, :23], lengths[:1])
    assert steps.tolist() == subsampled_lengths(lengths, config).tolist()
    if head == "ctc":
        torch.testing.assert_close(batch[0, :int(steps[0])], alone[0], rtol=1e-5, atol=1e-6)
        assert batch.shape[1] == int(steps.max()) and torch.allclose(batch.exp().sum(-1), torch.ones(()))
    else:
        torch.testing.assert_close(batch[0], alone[0], rtol=1e-5, atol=1e-6)


def test_word_timings_lie_in_order_within_the_recording(ctc_run, corpus):
    trained = speech.load(ctc_run / "BEST")
    utterance = _test_utterances(corpus, 1, seed=11)[0]
    result = trained.recognise([utterance.wave], timings=True)[0]
    assert [w.word for w in result.words] == result.text.split()
    ends = [0.0] + [t for w in result.words for t in (w.start, w.end)]
    assert ends == sorted(ends) and ends[-1] <= len(utterance.wave) / RATE + 0.05
    for word, span in zip(result.words, utterance.words):          # each word found where it was said
        if word.word == span.word:
            assert span.start / RATE - 0.15 <= word.start <= span.end / RATE


def test_predict_from_the_command_line(ctc_run, corpus, tmp_path, capsys):
    utterance = _test_utterances(corpus, 1, seed=3)[0]
    wav = write_wav(tmp_path / "utterance.wav", utterance.wave, RATE)
    assert main(["predict", "--checkpoint", str(ctc_run / "BEST"), str(wav), "--timings"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{wav}\t") and len(lines) == 1 + len(lines[0].split("\t")[1].split())
    assert main(["predict", "--checkpoint", str(ctc_run / "BEST"), str(wav), "--stream", "--chunk-ms", "200"]) == 0
    streamed = capsys.readouterr().out.strip().splitlines()
    assert streamed[0] == lines[0]
    out = tmp_path / "rows.jsonl"
    assert main(["predict", "--checkpoint", str(ctc_run / "BEST"), str(wav), "--output", str(out)]) == 0
    row = json.loads(out.read_text().splitlines()[0])
    assert row["audio"] == str(wav) and row["text"] == lines[0].split("\t")[1]


def test_what_a_model_cannot_do_is_one_clear_error(word_run, ctc_run, corpus, capsys):
    assert main(["evaluate", "--checkpoint", str(word_run / "BEST"), "--data", str(corpus / "test"),
                 "--connected", "5"]) == 1
    assert "this model classifies words" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(ctc_run / "BEST"), str(corpus / "test" / "1_ann_0.wav"),
                 "--ctc-beam", "4", "--lm-weight", "0.5"]) == 1
    assert "units are whole words" in capsys.readouterr().err
    with pytest.raises(ValueError, match="train it with --unidirectional"):
        speech.load(word_run / "BEST").stream()


def test_bad_training_input_is_one_line_and_writes_nothing(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "speech", "--data", str(corpus / "train"), "--out", str(run),
                 "--pattern", r"(?P<label>[a-z]+)-(?P<speaker>\d+)\.wav"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "matches none of the" in err and "--pattern" in err
    assert not any(run.glob("checkpoint-*"))
    assert main(["train", "speech", "--data", str(corpus / "train"), "--out", str(tmp_path / "r2"),
                 "--head", "words", "--connected", "10"]) == 1
    assert "it needs --head ctc" in capsys.readouterr().err
    manifest = tmp_path / "m.csv"
    manifest.write_text("audio,text\n" + "".join(f"gone-{i}.wav,one\n" for i in range(5)), encoding="utf-8")
    assert main(["train", "speech", "--data", str(manifest), "--out", str(tmp_path / "r3")]) == 1
    err = capsys.readouterr().err
    assert "5 of 5 rows point to missing audio files: gone-0.wav (line 2)" in err


def test_a_transcript_character_without_a_unit_is_mapped_or_refused(corpus, tmp_path, capsys):
    waves = {name: np.sin(np.arange(RATE // 2) * f / RATE * 2 * np.pi).astype(np.float32) * 0.5
             for name, f in (("a", 400.0), ("b", 900.0), ("c", 1500.0))}
    rows = ["audio,text"]
    for name, wave in waves.items():
        write_wav(tmp_path / f"{name}.wav", wave, RATE)
    rows += ["a.wav,ab", "b.wav,ba", "c.wav,ab"]
    (tmp_path / "train.csv").write_text("\n".join(rows[:3]) + "\n", encoding="utf-8")
    (tmp_path / "valid.csv").write_text("audio,text\nc.wav,abz\n", encoding="utf-8")
    common = ["train", "speech", "--data", str(tmp_path / "train.csv"), "--valid", str(tmp_path / "valid.csv"),
              "--sample-rate", str(RATE), "--hidden-size", "8", "--layers", "1", "--max-steps", "2", "--no-progress"]
    assert main(common + ["--out", str(tmp_path / "strict"), "--unknown-chars", "error"]) == 1
    assert "no unit for (the first: 'z')" in capsys.readouterr().err
    assert main(common + ["--out", str(tmp_path / "mapped")]) == 0
    assert "1 character of the validation transcripts has no unit" in capsys.readouterr().err


def test_init_encoder_copies_the_layers_both_have_and_leaves_the_head():
    from rnnkit.tasks.speech import AcousticModel, SpeechModel, init_encoder

    torch.manual_seed(0)
    source = AcousticModel(SpeechModel(head="words", subsample="conv", hidden_size=8, num_layers=1, num_classes=4))
    target = AcousticModel(SpeechModel(head="ctc", subsample="conv", hidden_size=8, num_layers=2, num_classes=6))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    assert init_encoder(target, source) == 1
    after, theirs = target.state_dict(), source.state_dict()
    for name in after:
        if name.startswith("conv.") or name.endswith(("_l0", "_l0_reverse")):
            assert torch.equal(after[name], theirs[name]), name
        else:                                                  # the second layer and the head stay as they were
            assert torch.equal(after[name], before[name]), name
    stacked = AcousticModel(SpeechModel(head="ctc", hidden_size=16, num_layers=1, num_classes=6))
    with pytest.raises(ValueError, match=r"subsample \('conv', this model 'stack'\), hidden_size \(8, this model 16\)"):
        init_encoder(stacked, source)


def test_a_ctc_recogniser_starts_from_a_word_classifier(word_run, corpus, tmp_path, capsys):
    common = ["train", "speech", "--data", str(corpus / "train"), "--sample-rate", str(RATE), "--connected", "20",
              "--connected-valid", "4", "--units", "words", "--hidden-size", "48", "--layers", "2",
              "--dropout", "0", "--init-from", str(word_run), "--no-progress"]
    run = tmp_path / "from-words"
    assert main(common + ["--out", str(run), "--max-steps", "2", "--lr", "1e-6", "--eval-every", "2"]) == 0
    capsys.readouterr()
    trained, source = speech.load(run / "BEST").model, speech.load(word_run / "BEST").model
    assert speech.load(run / "BEST").config["task"]["fit"] == {"init_from": str(word_run)}
    for name, value in source.encoder.state_dict().items():    # two steps at lr 1e-6 from the classifier's layer
        assert torch.allclose(trained.encoder.state_dict()[name], value, atol=1e-4), name
    fresh = trained.encoder.weight_ih_l1
    assert fresh.shape == (4 * 48, 2 * 48)
    assert main(common + ["--out", str(tmp_path / "mels"), "--n-mels", "20", "--max-steps", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "computed other features: n_mels (40, this run 20)" in err
    assert main(common + ["--out", str(tmp_path / "wide"), "--hidden-size", "32", "--max-steps", "1"]) == 1
    assert "differs in hidden_size (48, this model 32)" in capsys.readouterr().err
    assert not any((tmp_path / "wide").glob("checkpoint-*"))


def test_only_a_unidirectional_ctc_model_without_convolutions_streams():
    """``SpeechModel.streamable``: the one rule ``step()`` and the streaming recogniser refuse by."""
    from rnnkit.tasks.speech import AcousticModel, SpeechModel

    shape = dict(hidden_size=8, num_layers=1, num_classes=5, input_size=4)
    streams = AcousticModel(SpeechModel(head="ctc", subsample="stack", bidirectional=False, **shape)).eval()
    assert streams.config.streamable()
    log_probs, _ = streams.step(torch.randn(2, 2, 4))
    assert log_probs.shape == (2, 5)
    for other in (dict(head="ctc", subsample="stack", bidirectional=True), dict(head="ctc", subsample="conv",
                  bidirectional=False), dict(head="words", subsample="stack", bidirectional=False)):
        model = AcousticModel(SpeechModel(**other, **shape)).eval()
        assert not model.config.streamable()
        with pytest.raises(ValueError, match="streaming needs a unidirectional CTC model"):
            model.step(torch.randn(2, 2, 4))
