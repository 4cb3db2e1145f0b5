"""The language model: shapes, tying, regularisers, sampling rules, and that it learns to continue text."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.data import StreamBatches, Vocabulary
from rnnkit.tasks.lm import LanguageModel, LMConfig, sample


def test_shapes_and_state_carry():
    model = LanguageModel(LMConfig(vocab_size=11, embedding_size=6, hidden_size=8, num_layers=2))
    tokens = torch.randint(0, 11, (7, 3))
    logits, state = model(tokens)
    assert logits.shape == (7, 3, 11) and len(state) == 2
    # Two windows with the state carried equal one long window.
    first, state = model(tokens[:4])
    second, _ = model(tokens[4:], state)
    torch.testing.assert_close(torch.cat([first, second]), logits)


def test_tied_weights_are_one_tensor_and_last_layer_matches_embedding():
    model = LanguageModel(LMConfig(vocab_size=11, embedding_size=6, hidden_size=8, tie_weights=True))
    assert model.decoder.weight is model.embedding.weight
    assert model.layers[-1].hidden_size == 6


def test_init_range_bounds_every_parameter():
    model = LanguageModel(LMConfig(vocab_size=11, embedding_size=6, hidden_size=8, init_range=0.05))
    for name, parameter in model.named_parameters():
        assert parameter.abs().max() <= 0.05 and parameter.std() > 0.01, name
    with pytest.raises(ValueError, match="init_range"):
        LMConfig(vocab_size=11, init_range=0.0)


def test_locked_dropout_uses_one_mask_over_time():
    from rnnkit.nn import locked_dropout
    torch.manual_seed(0)
    x = torch.ones(5, 8, 16)
    y = locked_dropout(x, 0.5, training=True)
    assert torch.equal(y[0], y[4])                                  # the same mask at every step
    assert 0.3 < (y[0] == 0).float().mean() < 0.7 and set(y.unique().tolist()) == {0.0, 2.0}


def test_sampling_rules():
    logits = torch.tensor([0.0, 3.0, 1.0, 2.0])
    assert sample(logits, 0.0, None, None) == 1                                 # greedy
    g = torch.Generator().manual_seed(0)
    assert {sample(logits, 1.0, 1, None, g) for _ in range(20)} == {1}          # top-k 1 is greedy
    assert {sample(logits, 1.0, None, 0.5, g) for _ in range(50)} <= {1, 3}     # nucleus
    assert len({sample(logits, 5.0, None, None, g) for _ in range(200)}) == 4   # high temperature


@pytest.mark.parametrize("kwargs, match", [
    ({"length": -1}, "length"), ({"temperature": -0.5}, "temperature"), ({"top_k": 0}, "top_k"),
    ({"top_p": 1.5}, "top_p"),
])
def test_bad_generation_arguments(kwargs, match):
    model = LanguageModel(LMConfig(vocab_size=5, embedding_size=4, hidden_size=4, num_layers=1))
    args = dict(length=3) | kwargs
    with pytest.raises(ValueError, match=match):
        list(model.generate([1], **args))


def test_learns_to_continue_a_repeating_text():
    torch.manual_seed(0)
    text = "hello world. " * 60
    vocab = Vocabulary.build([text], "char")
    batches = StreamBatches(vocab.encode(text), batch_size=4, bptt=16)
    model = LanguageModel(LMConfig(vocab_size=len(vocab), embedding_size=16, hidden_size=32, num_layers=1,
                                   dropout=0.1, tie_weights=False))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    for epoch in range(8):
        state = None
        for x, y, _ in batches(epoch):
            logits, state = model(x, state)
            state = [tuple(s.detach() for s in layer) for layer in state]
            loss = F.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    out = vocab.decode(model.generate(vocab.encode("hello w"), 12, temperature=0))
    assert out == "orld. hello "
    assert np.isfinite(loss.item()) and loss.item() < 0.2


def _lm_run(out_dir, max_steps, resume=False):
    from rnnkit.tasks.lm import LanguageModelTask
    from rnnkit.train import TrainConfig, Trainer
    torch.manual_seed(0)
    text = "the quick brown fox jumps over the lazy dog. " * 30
    vocab = Vocabulary.build([text], "char")
    ids = vocab.encode(text)
    train, valid = StreamBatches(ids[:1100], 4, 12, random_length=True), StreamBatches(ids[1100:], 2, 12)
    model = LanguageModel(LMConfig(vocab_size=len(vocab), embedding_size=16, hidden_size=24, num_layers=2,
                                   dropout=0.1, tie_weights=True))
    task = LanguageModelTask(model, vocab)
    config = TrainConfig(lr=0.03, max_steps=max_steps, eval_every=10, schedule="cosine", schedule_steps=80,
                         warmup_steps=5, clip_grad_norm=1.0, progress=False)
    return Trainer(task, config, out_dir).fit(train, lambda: valid(0), resume=resume), task


def test_lm_task_trains_resumes_exactly_and_reloads(tmp_path):
    from rnnkit.tasks.lm import load
    full, task = _lm_run(tmp_path / "a", 80)
    assert full.losses[1] > 3.2 and full.metrics["loss"] < 2.8          # from ln(29) = 3.37: it learns
    _lm_run(tmp_path / "b", 50)                                         # stops mid-epoch, state carried
    resumed, _ = _lm_run(tmp_path / "b", 80, resume=True)
    assert sorted(resumed.losses) == list(range(51, 81))
    assert [resumed.losses[s] for s in range(51, 81)] == [full.losses[s] for s in range(51, 81)]
    trained = load(tmp_path / "a")
    text = "".join(trained.generate("the ", 20, temperature=0))
    assert len(text) == 20 and set(text) <= set(trained.vocab.tokens)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        list(trained.generate("THE", 5))


def test_bpe_model_trains_reloads_and_streams_whole_words(tmp_path):
    from rnnkit.tasks.lm import LanguageModelTask, load
    from rnnkit.train import TrainConfig, Trainer
    torch.manual_seed(0)
    text = "the quick brown fox jumps over the lazy dog\n" * 40
    vocab = Vocabulary.build([text], "bpe", max_size=40)                   # some words in pieces
    assert len(vocab) == 40
    batches = StreamBatches(vocab.encode(text), 4, 12)
    model = LanguageModel(LMConfig(vocab_size=len(vocab), embedding_size=16, hidden_size=32, num_layers=1))
    config = TrainConfig(lr=0.03, max_steps=60, eval_every=60, clip_grad_norm=1.0, progress=False)
    Trainer(LanguageModelTask(model, vocab), config, tmp_path).fit(batches, lambda: batches(0))
    trained = load(tmp_path)
    assert trained.vocab.kind == "bpe" and trained.vocab.tokens == vocab.tokens
    pieces = list(trained.generate("the quick", 16, temperature=0))
    ids = list(trained.model.generate(vocab.encode("the quick"), 16, temperature=0))
    assert "".join(pieces) == vocab.decode(ids, "k")                     # streamed = decoded at once
    assert len(pieces) == 16 and "".join(pieces).startswith(" brown fox jumps")
