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
        for x, y in batches(epoch):
            logits, state = model(x, state)
            state = [tuple(s.detach() for s in layer) for layer in state]
            loss = F.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    out = vocab.decode(model.generate(vocab.encode("hello w"), 12, temperature=0))
    assert out == "orld. hello "
    assert np.isfinite(loss.item()) and loss.item() < 0.2
