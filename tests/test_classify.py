"""Sequence classification: it learns what word order decides, reads digits row by row, ignores
padding, round-trips through checkpoints, resumes exactly and transfers from a language model."""

from __future__ import annotations

import csv
import random

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.data import BucketBatches, pad
from rnnkit.tasks import lm
from rnnkit.tasks.classify import ClassifierConfig, ClassifyData, SequenceClassifier, balanced_weights
from rnnkit.tasks.classify import evaluate, explain, fit, predict
from rnnkit.tasks.lm import LMData
from rnnkit.train import TrainConfig, find_checkpoint

FILLER = "the movie was a plot and really film actors it so very".split()


pytestmark = pytest.mark.usefixtures("one_thread")


def order_examples(n: int, seed: int):
    """Sentences holding both "good" and "bad": the label is which comes first. Every sentence has
    the same word counts for the two, so a bag of words cannot tell the classes apart."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 10))]
        first, second = sorted(rng.sample(range(len(words) + 2), 2))
        positive = rng.random() < 0.5
        words.insert(first, "good" if positive else "bad")
        words.insert(second, "bad" if positive else "good")
        texts.append(" ".join(words))
        labels.append("pos" if positive else "neg")
    return texts, labels


def write_csv(path, texts, labels, header=("review", "sentiment")):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(zip(texts, labels))
    return path


@pytest.fixture(scope="module")
def order_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("order")
    return (write_csv(folder / "train.csv", *order_examples(600, 0)),
            write_csv(folder / "dev.csv", *order_examples(200, 1)),
            write_csv(folder / "test.csv", *order_examples(200, 2)))


DATA = ClassifyData(text_col="review", label_col="sentiment", batch_size=32)
SMALL = dict(embedding_size=16, hidden_size=32)


def train_config(**kwargs):
    return TrainConfig(**{"lr": 1e-2, "eval_every": 20, "progress": False, "clip_grad_norm": 1.0, **kwargs})


@pytest.fixture(scope="module")
def order_run(order_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "order"
    result = fit(order_files[0], out, valid=order_files[1], data=DATA, model=SMALL,
                 train=train_config(max_epochs=4))
    return out, result


def test_word_order_beats_a_bag_of_words(order_files, order_run):
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    train_texts, train_labels = order_examples(600, 0)
    test_texts, test_labels = order_examples(200, 2)
    vectorizer = CountVectorizer(ngram_range=(1, 1))
    bow = LogisticRegression(max_iter=1000).fit(vectorizer.fit_transform(train_texts), train_labels)
    bow_accuracy = bow.score(vectorizer.transform(test_texts), test_labels)
    rnn_accuracy = evaluate(order_run[0], order_files[2])["accuracy"]
    assert rnn_accuracy >= 0.9 and bow_accuracy <= 0.7, (rnn_accuracy, bow_accuracy)


def test_digits_read_row_by_row_are_recognised(tmp_path):
    fit("digits", tmp_path / "digits", model=dict(hidden_size=32, pooling="last"), data=ClassifyData(batch_size=32),
        train=train_config(max_epochs=3, eval_every=1000))
    result = evaluate(tmp_path / "digits", "digits")                 # the held-out 10% (seeded split)
    assert result["examples"] == 180 and result["accuracy"] >= 0.9, result["accuracy"]
    assert sum(map(sum, result["confusion_matrix"])) == 180


# --- batching and padding ------------------------------------------------------------------------

def test_buckets_hold_similar_lengths_and_an_epoch_is_always_the_same():
    rng = np.random.default_rng(0)
    sequences = [list(range(1, int(n) + 1)) for n in rng.integers(1, 50, size=101)]
    labels = torch.arange(101)
    batches = BucketBatches(sequences, labels, batch_size=8, seed=3)
    first = list(batches(0))
    seen = torch.cat([b.labels for b in first])
    assert sorted(seen.tolist()) == list(range(101))                          # each example once
    spans = [int(b.lengths.max() - b.lengths.min()) for b in first]
    assert max(spans) <= 10                                                   # sorted: neighbours in length
    assert all(torch.equal(b.lengths, (b.inputs != 0).sum(1)) for b in first)
    again = list(batches(0))
    assert all(torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels) for a, b in zip(first, again))
    assert [b.labels[0].item() for b in batches(1)] != [b.labels[0].item() for b in first]
    unshuffled = [b.lengths.max().item() for b in BucketBatches(sequences, labels, 8, shuffle=False)()]
    assert unshuffled == sorted(unshuffled)


@pytest.mark.parametrize("cell, pooling", [("lstm", "max+mean+last+attention"), ("gru", "last"),
                                           ("rnn", "attention+max")])
def test_padding_never_changes_the_result(cell, pooling):
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(num_classes=3, num_embeddings=30, embedding_size=6, hidden_size=5,
                                                num_layers=2, cell=cell, pooling=pooling)).eval()
    sequences = [[4, 5, 6, 7, 8, 9, 10], [11, 3], [2, 2, 9, 28, 17]]
    inputs, lengths = pad(sequences)
    batched = model(inputs, lengths)
    for i, sequence in enumerate(sequences):
        alone = model(torch.tensor([sequence]), torch.tensor([len(sequence)]))
        torch.testing.assert_close(batched.logits[i:i + 1], alone.logits, rtol=1e-5, atol=1e-6)
        if batched.attention is not None:
            assert batched.attention[i, len(sequence):].abs().sum() == 0
            torch.testing.assert_close(batched.attention[i, :len(sequence)], alone.attention[0])


def test_numeric_input_and_class_weights():
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(num_classes=2, input_size=3, hidden_size=4, pooling="mean")).eval()
    short, long = np.ones((2, 3), np.float32), np.arange(15, dtype=np.float32).reshape(5, 3)
    inputs, lengths = pad([long, short])
    torch.testing.assert_close(model(inputs, lengths).logits[1], model(*pad([short])).logits[0])
    weights = balanced_weights(torch.tensor([0, 0, 0, 1]), 2)
    torch.testing.assert_close(weights, torch.tensor([4 / 6, 2.0]))
    with pytest.raises(ValueError, match="exactly one"):
        ClassifierConfig(num_classes=2, input_size=3, num_embeddings=5)
    with pytest.raises(ValueError, match="pooling"):
        ClassifierConfig(num_classes=2, input_size=3, pooling="max+sum")


def test_word_dropout_replaces_real_tokens_by_unk_in_training_only():
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(num_classes=2, num_embeddings=50, embedding_size=4, hidden_size=3,
                                                word_dropout=0.3))
    seen = []
    model.embedding.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    inputs, lengths = pad([list(range(2, 50)) * 40, [7, 8, 9]])              # (2, 1920), the second row padded
    model(inputs, lengths)
    dropped = (seen[-1] == 1) & (inputs != 1)
    real = inputs != 0
    assert abs(dropped[real].float().mean().item() - 0.3) < 0.03               # about p of the real tokens
    assert torch.equal(seen[-1][~real], inputs[~real])                         # padding stays padding
    model.eval()
    model(inputs, lengths)
    assert torch.equal(seen[-1], inputs)                                       # evaluation sees every word
    with pytest.raises(ValueError, match="word_dropout"):
        ClassifierConfig(num_classes=2, num_embeddings=5, word_dropout=1.0)
    with pytest.raises(ValueError, match="word_dropout is for token input"):
        ClassifierConfig(num_classes=2, input_size=3, word_dropout=0.1)


# --- checkpoints, prediction, resume ------------------------------------------------------------

def test_checkpoint_round_trip_evaluate_predict_explain(order_files, order_run):
    out, result = order_run
    assert result.metrics["accuracy"] >= 0.9 and (out / "log.csv").exists()
    report = evaluate(out, order_files[1])
    assert report["accuracy"] == pytest.approx(result.metrics["accuracy"], abs=0.02)
    assert set(report["per_class"]) == {"neg", "pos"} and report["labels"] == ["neg", "pos"]
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    texts = ["the good film was bad", "the bad film was good", "bad"]
    predictions = predict(out, texts)
    assert [p.label for p in predictions[:2]] == ["pos", "neg"]
    assert all(sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-4) for p in predictions)
    assert rnnkit.load(out).predict(texts) == predictions
    why = explain(out, "the good film was bad")
    assert why.method == "gradient_x_input" and why.tokens == "the good film was bad".split()
    assert len(why.scores) == 5 and why.prediction == predictions[0]


def test_attention_pooling_explains_with_its_weights(order_files, tmp_path):
    fit(order_files[0], tmp_path / "att", valid=order_files[1], data=DATA,
        model=dict(SMALL, pooling="attention"), train=train_config(max_steps=3))
    why = explain(tmp_path / "att", "so good it was bad")
    assert why.method == "attention" and sum(why.scores) == pytest.approx(1.0, abs=1e-4)


def lm_run(folder, texts):
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    lm.fit(corpus, folder / "lm", model=dict(embedding_size=16, hidden_size=24, num_layers=2),
             data=LMData(tokens="word", batch_size=4, bptt=8), train=train_config(max_steps=4))
    return folder / "lm"


@pytest.mark.parametrize("transfer", [False, True])
def test_resume_gives_the_same_losses(order_files, tmp_path, transfer):
    init = lm_run(tmp_path, order_examples(100, 5)[0]) if transfer else None
    run = lambda out, steps, resume=False: fit(                                   # noqa: E731
        order_files[1], out, valid=order_files[2], data=ClassifyData(text_col="review", label_col="sentiment",
                                                                     batch_size=16),
        model=None if transfer else SMALL, init_from=init, train=train_config(max_steps=steps, eval_every=5),
        resume=resume)
    whole = run(tmp_path / "whole", 20)                                           # 13 batches an epoch
    run(tmp_path / "split", 10)
    resumed = run(tmp_path / "split", 20, resume=True)
    assert sorted(resumed.losses) == list(range(11, 21))               # 1-based steps
    assert all(resumed.losses[step] == whole.losses[step] for step in resumed.losses)


def test_language_model_transfer_copies_weights_with_discriminative_lrs(order_files, tmp_path):
    lm_dir = lm_run(tmp_path, order_examples(100, 5)[0])
    lm = rnnkit.load(lm_dir)
    out = tmp_path / "clf"
    fit(order_files[1], out, valid=order_files[2], data=DATA, init_from=lm_dir,
        train=train_config(max_epochs=2, eval_every=1000))                      # 7 batches an epoch
    classifier = rnnkit.load(out)
    model, vocab = classifier.model, lm.vocab
    assert classifier.encoder.vocab[:2] == ["<pad>", "<unk>"] and not classifier.encoder.lowercase
    ours = [classifier.encoder.index[token] for token in ("good", "bad", "<unk>")]
    theirs = [vocab.index[token] for token in ("good", "bad", "<unk>")]
    # Gradual unfreezing: epoch 0 trained the head, epoch 1 the top layer; the rest is the LM's.
    torch.testing.assert_close(model.embedding.weight[ours], lm.model.embedding.weight[theirs], rtol=0, atol=0)
    torch.testing.assert_close(model.layers[0].weight_hh_l0, lm.model.layers[0].weight_hh_l0, rtol=0, atol=0)
    assert not torch.equal(model.layers[1].weight_hh_l0, lm.model.layers[1].weight_hh_l0)
    state = find_checkpoint(out).trainer_state()
    groups = state["optimizer"]["param_groups"]
    assert [g["lr_scale"] for g in groups] == pytest.approx([2.6 ** -3, 2.6 ** -2, 2.6 ** -1, 1.0])
    assert groups[0]["lr"] == pytest.approx(groups[-1]["lr"] / 2.6 ** 3)


def test_language_model_transfer_starts_from_the_language_model(tmp_path):
    from rnnkit.tasks.classify import init_from_lm
    from rnnkit.tasks.lm import LanguageModel, LMConfig

    torch.manual_seed(0)
    lm = LanguageModel(LMConfig(vocab_size=10, embedding_size=6, hidden_size=5, num_layers=2, cell="gru")).eval()
    model = SequenceClassifier(ClassifierConfig(num_classes=2, num_embeddings=12, embedding_size=6, hidden_size=5,
                                                num_layers=2, cell="gru", top_hidden_size=None)).eval()
    init_from_lm(model, lm, {i + 2: i for i in range(10)})
    tokens = torch.tensor([[3, 4, 5, 6]])
    lm_top = lm.layers[1](lm.layers[0](lm.embedding(tokens).transpose(0, 1))[0])[0]        # (T, 1, H)
    x = model.embed(tokens + 2)
    for layer in model.layers:
        x, _ = layer(x, lengths=torch.tensor([4]))
    torch.testing.assert_close(x[0, :, :5], lm_top[:, 0], rtol=1e-5, atol=1e-6)           # forward half
    with pytest.raises(ValueError, match="does not match"):
        init_from_lm(SequenceClassifier(ClassifierConfig(num_classes=2, num_embeddings=12)), lm, {})


def test_multi_label_with_bpe_tokens(tmp_path):
    import json

    rng = random.Random(0)
    lines = []
    for _ in range(300):
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 6))]
        labels = [name for name in ("good", "bad") if rng.random() < 0.5]
        for name in labels:
            words.insert(rng.randint(0, len(words)), name)
        lines.append(json.dumps({"text": " ".join(words), "label": labels or ["none"]}))
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "multi"
    fit(tmp_path / "train.jsonl", out, data=ClassifyData(multi_label=True, tokens="bpe", bpe_vocab_size=60),
        model=SMALL, class_weights="balanced", train=train_config(max_epochs=6, eval_every=1000))
    report = evaluate(out, tmp_path / "train.jsonl", plot=False)
    assert report["accuracy"] >= 0.9 and report["macro_f1"] >= 0.9 and "confusion_matrix" not in report
    prediction = predict(out, ["so good and bad"])[0]
    assert set(prediction.label) == {"bad", "good"} and set(prediction.probabilities) == {"bad", "good", "none"}
