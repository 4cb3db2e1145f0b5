"""The introductions' exercise: predict the next character of "hello" (h, e, l, l -> e, l, l, o)."""

import pytest
import torch

from rnnkit.examples import hello
from rnnkit.nn import ManyToMany, ManyToOne


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_learns_hello_within_a_few_hundred_steps(cell):
    result = hello.run(cell, steps=300, seed=0)
    assert result.prediction == "ello"
    assert result.steps <= 300
    assert result.loss < 0.05


def test_second_l_needs_the_hidden_state():
    # The same input "l" must map to "l" then "o": a model without memory cannot do it.
    inputs = hello.encode("hell")
    assert torch.equal(inputs[0, 2], inputs[0, 3])


def test_many_to_one_reads_each_sequence_at_its_real_length():
    torch.manual_seed(0)
    model = ManyToOne(3, 5, 2, cell="gru", bidirectional=True)
    x = torch.randn(2, 6, 3)
    lengths = [6, 3]
    batched = model(x, lengths=lengths)
    alone = model(x[1:, :3])                                  # the short sequence, unpadded
    torch.testing.assert_close(batched[1], alone[0])


def test_many_to_many_outputs_every_step_and_returns_state():
    model = ManyToMany(3, 5, 4, cell="lstm", num_layers=2)
    out = model(torch.randn(2, 7, 3))
    assert out.output.shape == (2, 7, 4)
    h_n, c_n = out.state
    assert h_n.shape == c_n.shape == (2, 2, 5)
