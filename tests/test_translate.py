"""Translation: pairs from files, subwords, the attention encoder-decoder, beam search, and the
task end to end on a generated task that needs attention (reverse a sequence of symbols)."""

from __future__ import annotations

import itertools
import json
import random
import warnings

import pytest
import torch

from rnnkit.cli import main
from rnnkit.tasks import translate
from rnnkit.tasks.translate import TranslateData, TranslatorConfig
from rnnkit.tasks.translate.model import Translator
from rnnkit.tasks.translate.pairs import read_pairs, read_parallel
from rnnkit.tasks.translate.search import beam_search
from rnnkit.train import TrainConfig

SYMBOLS = "ab cd ef gh ij kl mn op".split()


def reversal(n: int, seed: int, low: int = 4, high: int = 9):
    """Pairs "ab cd ef" -> "EF CD AB": the symbols reversed and upper-cased. Read left to right,
    the first target symbol is the last source one: a fixed-size encoder state must hold the whole
    sentence, while attention can look the symbol up."""
    rng = random.Random(seed)
    sources, targets = [], []
    for _ in range(n):
        words = [rng.choice(SYMBOLS) for _ in range(rng.randint(low, high))]
        sources.append(" ".join(words))
        targets.append(" ".join(w.upper() for w in reversed(words)))
    return sources, targets


def write_pairs(folder, name: str, sources, targets):
    (folder / f"{name}.src").write_text("\n".join(sources) + "\n", encoding="utf-8")
    (folder / f"{name}.tgt").write_text("\n".join(targets) + "\n", encoding="utf-8")
    return str(folder / f"{name}.src"), str(folder / f"{name}.tgt")


SMALL = dict(embedding_size=24, hidden_size=48, dropout=0.0, label_smoothing=0.0)
TRAIN = dict(lr=5e-3, schedule="cosine", warmup_steps=20, max_steps=800, eval_every=800, progress=False,
             tensorboard=False, clip_grad_norm=1.0, monitor="bleu", monitor_mode="max")


@pytest.fixture(scope="module")
def reversal_runs(tmp_path_factory):
    """Two translators trained on the same reversal pairs: with attention, and without."""
    folder = tmp_path_factory.mktemp("reversal")
    src, tgt = write_pairs(folder, "train", *reversal(3000, seed=0))
    vsrc, vtgt = write_pairs(folder, "valid", *reversal(200, seed=1))
    tsrc, ttgt = write_pairs(folder, "test", *reversal(200, seed=2))
    data = TranslateData(source=src, target=tgt, valid_source=vsrc, valid_target=vtgt, vocab_size=60, batch_size=32)
    runs = {}
    for attention in ("general", "none"):
        out = folder / attention
        translate.fit(None, out, data=data, model=dict(SMALL, attention=attention), train=TrainConfig(**TRAIN))
        runs[attention] = out
    return runs, (tsrc, ttgt)


def exact_match(run, test) -> float:
    sources = open(test[0], encoding="utf-8").read().splitlines()
    references = open(test[1], encoding="utf-8").read().splitlines()
    outputs = translate.translate(run / "BEST", sources, beam=1)
    return sum(o == r for o, r in zip(outputs, references)) / len(references)


def test_attention_learns_reversal_and_is_needed(reversal_runs):
    runs, test = reversal_runs
    with_attention, without = exact_match(runs["general"], test), exact_match(runs["none"], test)
    assert with_attention >= 0.99, with_attention
    assert without < 0.9, (without, with_attention)           # 0.775 measured


def test_evaluate_and_predict_from_the_command_line(reversal_runs, tmp_path, capsys):
    runs, (tsrc, ttgt) = reversal_runs
    hyp, png = tmp_path / "hyp.txt", tmp_path / "att.png"
    assert main(["evaluate", "--checkpoint", str(runs["general"] / "BEST"), "--source", tsrc, "--target", ttgt,
                 "--json", "--hypotheses", str(hyp), "--plot-attention", "3", "--attention-png", str(png)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bleu"] > 95 and result["chrf"] > 95 and result["sentences"] == 200
    assert result["bleu_signature"].startswith("nrefs:1|case:mixed")
    assert len(hyp.read_text().splitlines()) == 200 and png.read_bytes()[:4] == b"\x89PNG"
    assert main(["predict", "--checkpoint", str(runs["general"] / "BEST"), "ab cd ef gh"]) == 0
    assert capsys.readouterr().out.strip() == "GH EF CD AB"
    out = tmp_path / "out.txt"
    assert main(["predict", "--checkpoint", str(runs["general"] / "BEST"), "--input", tsrc, "--output", str(out),
                 "--beam", "3"]) == 0
    assert out.read_text().splitlines() == translate.translate(runs["general"] / "BEST",
                                                               open(tsrc).read().splitlines(), beam=3)
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(runs["general"] / "BEST"), "ab cd ef gh", "--n-best", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].endswith("\tGH EF CD AB")
    scores = [float(line.split("\t")[1]) for line in lines]
    assert scores == sorted(scores, reverse=True)


def test_a_sentence_alone_and_in_a_padded_batch_decode_the_same(reversal_runs):
    trained = translate.load(reversal_runs[0]["general"] / "BEST")
    sentences = ["ab cd ef gh ij kl mn op ab", "cd", "ef gh ij"]
    together = trained.translate(sentences, beam=4, batch_size=3)
    for sentence, found in zip(sentences, together):
        alone = trained.translate([sentence], beam=4)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in found]


def test_bad_input_to_translate(reversal_runs, tmp_path, capsys):
    run = str(reversal_runs[0]["general"] / "BEST")
    with pytest.raises(ValueError, match="sentence 2 is empty"):
        translate.load(run).translate(["ab", "  "])
    with pytest.raises(ValueError, match="nothing to translate"):
        translate.load(run).translate([])
    (tmp_path / "a.src").write_text("ab\ncd\n")
    (tmp_path / "a.tgt").write_text("AB\n")
    assert main(["evaluate", "--checkpoint", run, "--source", str(tmp_path / "a.src"),
                 "--target", str(tmp_path / "a.tgt")]) == 1
    assert "has 2 lines but" in capsys.readouterr().err


# --- the model and search on tiny untrained networks -------------------------------------------


def tiny(attention="general", input_feeding=False, cell="gru", seed=0) -> Translator:
    torch.manual_seed(seed)
    config = TranslatorConfig(source_vocab=9, target_vocab=7, embedding_size=6, hidden_size=8, encoder_layers=1,
                              attention=attention, input_feeding=input_feeding, cell=cell, dropout=0.0)
    return Translator(config).eval()


def sequence_log_prob(model, source, tokens) -> float:
    """log p(tokens <eos> | source), teacher-forced."""
    c = model.config
    target = torch.tensor([[c.bos_id] + tokens + [c.eos_id]])
    return -model.loss(source, torch.tensor([source.shape[1]]), target, reduction="sum", smoothing=0.0).item()


@pytest.mark.parametrize("input_feeding", [False, True])
def test_beam_search_finds_the_best_sequence_of_exhaustive_search(input_feeding):
    model = tiny(input_feeding=input_feeding)
    source = torch.tensor([[4, 5, 6]])
    symbols, longest = [4, 5, 6], 3                            # the target's non-special ids
    candidates = [list(seq) for n in range(longest + 1) for seq in itertools.product(symbols, repeat=n)]
    scored = [(sequence_log_prob(model, source, seq), seq) for seq in candidates]
    best_score, best = max(scored)
    found = beam_search(model, source, torch.tensor([3]), beam=len(candidates), alpha=0.0, max_length_ratio=0.0,
                        extra_length=longest, n_best=3)[0]
    assert found[0].tokens == best
    assert found[0].log_prob == pytest.approx(best_score, abs=1e-4)
    for hypothesis in found:                                    # every score is the sequence's log-probability
        assert hypothesis.log_prob == pytest.approx(sequence_log_prob(model, source, hypothesis.tokens), abs=1e-4)


@pytest.mark.parametrize("cell,input_feeding", [("gru", False), ("lstm", True)])
def test_beam_of_one_is_greedy(cell, input_feeding):
    model = tiny(cell=cell, input_feeding=input_feeding, seed=3)
    source, lengths = torch.tensor([[4, 5, 6, 7], [8, 4, 0, 0]]), torch.tensor([4, 2])
    found = beam_search(model, source, lengths, beam=1, alpha=1.0, max_length_ratio=2.0, extra_length=2)
    c = model.config
    for row in range(2):
        memory, state = model.encode(source[row:row + 1, :int(lengths[row])], lengths[row:row + 1])
        token, greedy = torch.tensor([c.bos_id]), []
        for _ in range(2 * int(lengths[row]) + 2 + 1):
            log_probs, state, _ = model.step(token, state, memory)
            log_probs[:, [c.pad_id, c.bos_id]] = float("-inf")
            if len(greedy) == 2 * int(lengths[row]) + 2:
                break
            token = log_probs.argmax(-1)
            if int(token) == c.eos_id:
                break
            greedy.append(int(token))
        assert found[row][0].tokens == greedy


def test_attention_sums_to_one_and_is_zero_on_padding():
    for attention in ("general", "dot", "additive"):
        model = tiny(attention)
        source, lengths = torch.tensor([[4, 5, 6, 7], [8, 4, 0, 0]]), torch.tensor([4, 2])
        memory, (state, _) = model.encode(source, lengths)
        queries = torch.randn(2, 3, 8)
        _, weights = model.attend(queries, memory)
        assert torch.allclose(weights.sum(-1), torch.ones(2, 3))
        assert torch.all(weights[1, :, 2:] == 0)


def test_teacher_forced_logits_equal_step_by_step_decoding():
    for input_feeding in (False, True):
        model = tiny(input_feeding=input_feeding, cell="lstm")
        source, lengths = torch.tensor([[4, 5, 6], [7, 8, 0]]), torch.tensor([3, 2])
        target = torch.tensor([[2, 4, 5, 6], [2, 6, 6, 4]])
        logits = torch.log_softmax(model(source, lengths, target), -1)
        memory, state = model.encode(source, lengths)
        for t in range(target.shape[1]):
            step, state, _ = model.step(target[:, t], state, memory)
            assert torch.allclose(step, logits[:, t], atol=1e-5)


# --- files ---------------------------------------------------------------------------------------


def test_parallel_files_skip_empty_pairs_and_refuse_misaligned_ones(tmp_path):
    (tmp_path / "a.de").write_text("Ein Hund.\n\nZwei Katzen.\nDrei\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("A dog.\nnothing\nTwo cats.\n \n", encoding="utf-8")
    with pytest.warns(UserWarning, match="skipped 2 of 4 pairs"):
        pairs = read_parallel(tmp_path / "a.de", tmp_path / "a.en")
    assert pairs.sources == ["Ein Hund.", "Zwei Katzen."] and pairs.targets == ["A dog.", "Two cats."]
    (tmp_path / "b.en").write_text("one\ntwo\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"a.de has 4 lines but .*b.en has 2"):
        read_parallel(tmp_path / "a.de", tmp_path / "b.en")
    (tmp_path / "bad.de").write_bytes(b"gut\nschl\xfcssel\n")
    with pytest.raises(ValueError, match="not valid utf-8: byte 0xfc at offset 8"):
        read_parallel(tmp_path / "bad.de", tmp_path / "b.en")


def test_pairs_from_tsv_and_json_lines(tmp_path):
    (tmp_path / "p.tsv").write_text("Hallo Welt\tHello world\nJa\tYes\n", encoding="utf-8")
    assert read_pairs(tmp_path / "p.tsv").targets == ["Hello world", "Yes"]
    rows = [{"de": "Hallo", "en": "Hello"}, {"de": "Nein", "en": "No"}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert read_pairs(tmp_path / "p.jsonl", source_field="de", target_field="en").sources == ["Hallo", "Nein"]
    with pytest.raises(ValueError, match="has no key 'source'"):
        read_pairs(tmp_path / "p.jsonl")


def test_training_refuses_bad_input_in_one_line(tmp_path, capsys):
    src, tgt = write_pairs(tmp_path, "t", *reversal(40, seed=0))
    short = tmp_path / "short.tgt"
    short.write_text("AB\n")
    assert main(["train", "translate", "--source", src, "--target", str(short), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has 40 lines but" in err and not (tmp_path / "r" / "log.csv").exists()
    assert main(["train", "translate", "--out", str(tmp_path / "r2")]) == 1
    assert "--source FILE --target FILE or as --data PAIRS" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["train", "translate", "--source", src, "--target", tgt, "--out", str(tmp_path / "r3"),
                     "--max-length", "1"]) == 1
    assert "raise --max-length" in capsys.readouterr().err


def test_long_pairs_are_filtered_and_counted_and_subwords_invert(tmp_path, capsys):
    sources, targets = reversal(60, seed=4, low=2, high=9)
    src, tgt = write_pairs(tmp_path, "t", sources, targets)
    with pytest.warns(UserWarning, match=r"left out \d+ of 5\d training pairs with a side longer than --max-length 6"):
        translate.fit(None, tmp_path / "run", data=TranslateData(source=src, target=tgt, vocab_size=60, max_length=6),
                      model=SMALL, train=TrainConfig(max_steps=2, progress=False, tensorboard=False, monitor="bleu",
                                                     monitor_mode="max"))
    trained = translate.load(tmp_path / "run")
    for sentence in ["ab cd ef", "abcd  ef", " ab\tcd ef "]:          # plain text back, one space between words
        ids = trained.encode([sentence])[0]
        assert trained.source_vocab.decode(ids) == " ".join(sentence.split())
    assert trained.text(translate.Hypothesis(trained.encode(["GH IJ"])[0], 0.0, 0.0)) != "GH IJ"   # not its side
    assert main(["generate", "--checkpoint", str(tmp_path / "run"), "--prompt", "x"]) == 1
    assert "'translate' checkpoint" in capsys.readouterr().err
