"""The workspace pool of the time loop's large buffers (rnnkit/nn/workspace.py): buffers are reused
across passes, and never while a graph that saved them is alive."""

import pytest
import torch

from rnnkit.nn import GRU, LSTM, workspace

MIN_BYTES = 1 << 16                     # pool from 64 KiB here, so that small layers use it
BIG = MIN_BYTES // 4                    # float32 elements in the smallest pooled buffer


@pytest.fixture(autouse=True)
def empty_pool(monkeypatch):
    monkeypatch.setattr(workspace, "ENABLED", True)
    monkeypatch.setattr(workspace, "MIN_BYTES", MIN_BYTES)
    workspace.clear()
    yield
    workspace.clear()


def test_a_buffer_given_back_is_handed_out_again():
    like = torch.empty(0)
    first = workspace.take((2, BIG), like)
    address = first.data_ptr()
    workspace.give_back(first)
    assert workspace.kept_bytes() == 2 * BIG * 4
    again = workspace.take((BIG, 2), like, zero=True)             # same size, another shape
    assert again.data_ptr() == address and again.shape == (BIG, 2) and not again.any()
    assert workspace.kept_bytes() == 0


def test_a_buffer_given_back_twice_is_handed_out_once():
    like = torch.empty(0)
    buffer = workspace.take((BIG,), like)
    workspace.give_back(buffer)
    workspace.give_back(buffer)
    first, second = workspace.take((BIG,), like), workspace.take((BIG,), like)
    assert first.data_ptr() != second.data_ptr()


def test_small_and_mismatched_buffers_are_not_pooled():
    like = torch.empty(0)
    small = workspace.take((16,), like)
    workspace.give_back(small)
    assert workspace.kept_bytes() == 0
    big = workspace.take((2 * BIG,), like)
    workspace.give_back(big)
    other = workspace.take((2 * BIG,), like.double())               # another dtype: a new buffer
    assert other.dtype == torch.float64 and other.data_ptr() != big.data_ptr()
    tiny_need = workspace.take((BIG // 2 + 1,), like)                 # would waste over half of it
    assert tiny_need.data_ptr() != big.data_ptr()


def test_the_pool_keeps_at_most_its_limit(monkeypatch):
    monkeypatch.setattr(workspace, "MAX_KEPT_BYTES", 3 * BIG * 4)
    like = torch.empty(0)
    buffers = [workspace.take((BIG,), like) for _ in range(5)]
    for buffer in buffers:
        workspace.give_back(buffer)
    assert workspace.kept_bytes() == 3 * BIG * 4
    workspace.clear()
    assert workspace.kept_bytes() == 0


@pytest.mark.parametrize("layer", [LSTM, GRU])
def test_graphs_alive_at_once_keep_their_own_buffers(layer):
    """Two forward passes whose graphs are both alive, then their backward passes, the first with
    retain_graph and run twice: each must give the gradients it gives alone. The per-step buffers
    are large enough to be pooled."""
    torch.manual_seed(0)
    T, B, I, H = 32, 8, 12, 64
    assert T * B * H * 4 >= MIN_BYTES
    model = layer(I, H)
    xs = [torch.randn(T, B, I, requires_grad=True) for _ in range(2)]

    def grads(x, loss, retain=False):
        return torch.autograd.grad(loss, [x] + list(model.parameters()), retain_graph=retain)

    alone = []
    for x in xs:
        out, _ = model(x)
        alone.append(grads(x, out.square().sum()))
    losses = [model(x)[0].square().sum() for x in xs]                    # both graphs alive
    second = grads(xs[1], losses[1])
    first = grads(xs[0], losses[0], retain=True)
    first_again = grads(xs[0], losses[0])
    for got, want in ((first, alone[0]), (first_again, alone[0]), (second, alone[1])):
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    del losses
    assert workspace.kept_bytes() > 0                                   # all given back in the end


def test_results_equal_with_the_pool_off(monkeypatch):
    torch.manual_seed(1)
    model = GRU(12, 64, num_layers=2, bidirectional=True)
    x = torch.randn(32, 8, 12, requires_grad=True)
    results = []
    for enabled in (True, True, False):
        monkeypatch.setattr(workspace, "ENABLED", enabled)
        out, h_n = model(x)
        results.append([out, h_n] + list(torch.autograd.grad(out.sum() + h_n.sum(), [x] + list(model.parameters()))))
    for run in results[1:]:
        for a, b in zip(run, results[0]):
            assert torch.equal(a, b)
