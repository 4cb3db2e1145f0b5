"""Under torch.autocast on the CPU the layers run in bfloat16, as torch.nn's do, and train."""

import pytest
import torch

import rnnkit.nn as rk


@pytest.mark.parametrize("cls", [rk.RNN, rk.LSTM, rk.GRU])
@pytest.mark.parametrize("options", [{}, {"layer_norm": True, "bidirectional": True}])
def test_bfloat16_autocast_matches_float32_and_reaches_float32_weights(cls, options):
    torch.manual_seed(0)
    layer = cls(8, 16, num_layers=2, **options).eval()
    x = torch.randn(6, 3, 8, requires_grad=True)
    lengths = [6, 2, 4]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = layer(x, lengths=lengths)
    reference, _ = layer(x, lengths=lengths)
    assert out.dtype == torch.bfloat16
    error = (out.float() - reference).abs()
    assert error.max() < 0.1 and error.mean() < 0.01        # bfloat16 keeps about 3 digits
    out.float().square().sum().backward()
    for name, param in layer.named_parameters():
        assert param.grad is not None and param.grad.dtype == torch.float32, name
        assert torch.isfinite(param.grad).all(), name
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("cls", [rk.RNN, rk.LSTM, rk.GRU])
def test_the_state_returned_under_autocast_is_accepted_back_under_autocast(cls):
    # a language model carries h_n (bfloat16 under autocast) into its next window of float32 embeddings
    layer = cls(8, 16, num_layers=2)
    x = torch.randn(6, 3, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, state = layer(x)
        out, _ = layer(x, state)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    with pytest.raises(ValueError, match="has dtype torch.bfloat16 but input has torch.float32"):
        layer(x, state)                                     # outside autocast the dtypes must agree


@pytest.mark.parametrize("cls", [rk.RNNCell, rk.LSTMCell, rk.GRUCell])
@pytest.mark.parametrize("graph", [True, False], ids=["graph", "no_graph"])
def test_cells_under_autocast_agree_with_float32_with_and_without_a_graph(cls, graph):
    torch.manual_seed(0)
    cell = cls(8, 16)
    x = torch.randn(3, 8, requires_grad=graph)
    first = lambda y: y[0] if isinstance(y, tuple) else y                                # noqa: E731
    with torch.set_grad_enabled(graph):
        reference = first(cell(x))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = first(cell(x))
    assert (out.float() - reference).abs().max() < 0.05
    if graph:
        out.float().sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in cell.parameters())
