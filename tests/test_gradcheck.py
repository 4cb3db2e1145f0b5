"""float64 torch.autograd.gradcheck of the hand-written BPTT.

Every check differentiates w.r.t. the input, the initial state(s) and all
parameters.  Parameters are passed in as gradcheck inputs and substituted with
torch.func.functional_call; a pre-check asserts every one of them is really
used in the graph (otherwise gradcheck would pass vacuously if the layer kept
a stale cached copy of its weights).
"""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from conftest import (
    CELL_UNITS,
    CELLS,
    as_state,
    build_cell,
    default_proj,
    gen,
    is_lstm,
    make_input,
    make_ours,
    make_state,
    randn,
    state_list,
)
import rnnkit.nn as rk

T, B, I, H = 4, 3, 3, 4
LENGTHS = [3, 1, 4]  # unsorted, includes a length-1 sequence
DT = torch.float64

# float64 central differences are accurate to ~1e-9 here, so the tolerances can be
# far tighter than gradcheck's defaults (which would let a 0.1% gradient error pass).
GC_KW = dict(eps=1e-6, atol=1e-6, rtol=1e-5, nondet_tol=0.0)


def _flatten_out(out):
    """(output, h_n) or (output, (h_n, c_n)) -> flat tuple of tensors."""
    y, hn = out
    return (y, *state_list(hn))


def _check_all_inputs_used(fn, inputs):
    outs = fn(*inputs)
    total = sum(o.sum() for o in outs)
    # raises "One of the differentiated Tensors appears to not have been used in the graph"
    torch.autograd.grad(total, inputs, allow_unused=False)


def _gradcheck_module(module, call_args_builder, inputs_nonparam, *, reseed=None, **gc_kw):
    """gradcheck f(*inputs_nonparam, *params) where params feed functional_call."""
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in module.named_parameters()]
    n_in = len(inputs_nonparam)

    def fn(*args):
        if reseed is not None:
            torch.manual_seed(reseed)
        call_args, call_kwargs = call_args_builder(*args[:n_in])
        out = functional_call(module, dict(zip(names, args[n_in:])), call_args, call_kwargs)
        return out

    inputs = tuple(inputs_nonparam) + tuple(params)
    _check_all_inputs_used(fn, inputs)
    assert torch.autograd.gradcheck(fn, inputs, **{**GC_KW, **gc_kw})


def _gradcheck_layer(layer, cell, *, lengths=LENGTHS, num_layers, bidirectional, seed=0, reseed=None,
                     **gc_kw):
    g = gen(seed)
    x = make_input(T, B, I, g=g, dtype=DT).requires_grad_(True)
    hx = make_state(cell, num_layers=num_layers, bidirectional=bidirectional, batch=B,
                    hidden_size=H, proj_size=default_proj(cell, H), g=g, dtype=DT)
    hx = [h.requires_grad_(True) for h in state_list(hx)]

    def builder(x, *hs):
        return (x, as_state(list(hs), cell)), {"lengths": lengths}

    module = _FlatOut(layer)
    _gradcheck_module(module, builder, [x, *hx], reseed=reseed, **gc_kw)


class _FlatOut(torch.nn.Module):
    """Wraps a layer so that forward returns a flat tuple of tensors."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, *args, **kwargs):
        return _flatten_out(self.layer(*args, **kwargs))


# --------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_bidirectional_two_layers_with_lengths(cell):
    layer = make_ours(cell, I, H, num_layers=2, bidirectional=True, dtype=DT, seed=1)
    _gradcheck_layer(layer, cell, num_layers=2, bidirectional=True)


@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_no_lengths_batch_first_no_bias(cell):
    layer = make_ours(cell, I, H, num_layers=2, bidirectional=True, dtype=DT, seed=2,
                      bias=False, batch_first=True)
    g = gen(5)
    x = make_input(T, B, I, g=g, dtype=DT, batch_first=True).requires_grad_(True)

    def builder(x):
        return (x,), {}

    _gradcheck_module(_FlatOut(layer), builder, [x])


@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_layer_norm(cell):
    """Full Jacobian check of layer_norm=True on one unidirectional layer."""
    layer = make_ours(cell, I, H, dtype=DT, seed=3, layer_norm=True)
    _gradcheck_layer(layer, cell, num_layers=1, bidirectional=False, seed=1)


@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_layer_norm_bidirectional_two_layers_fast(cell):
    """layer_norm=True on the full bidirectional 2-layer stack with lengths.
    fast_mode (random projections of the Jacobian) keeps it cheap: the LN
    layer has ~900 scalar inputs and a full check costs a minute or more."""
    layer = make_ours(cell, I, H, num_layers=2, bidirectional=True, dtype=DT, seed=3,
                      layer_norm=True)
    _gradcheck_layer(layer, cell, num_layers=2, bidirectional=True, seed=1, fast_mode=True)


@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_zoneout_eval(cell):
    layer = make_ours(cell, I, H, num_layers=2, bidirectional=True, dtype=DT, seed=5,
                      zoneout=0.3)
    layer.eval()
    _gradcheck_layer(layer, cell, num_layers=2, bidirectional=True, seed=3)


def _deterministic_under_seed(layer, cell, seed=123):
    g = gen(0)
    x = make_input(T, B, I, g=g, dtype=DT)
    with torch.no_grad():
        torch.manual_seed(seed)
        a = _flatten_out(layer(x))
        torch.manual_seed(seed)
        b = _flatten_out(layer(x))
    return all(torch.equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("option", [{"weight_drop": 0.4}, {"zoneout": 0.3}], ids=["weight_drop", "zoneout"])
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_gradcheck_training_mode_regularisers(cell, option):
    """With the RNG re-seeded on every call, the random mask is fixed, so the
    training-mode function is deterministic and its gradient must be exact."""
    layer = make_ours(cell, I, H, num_layers=1, dtype=DT, seed=6, **option)
    layer.train()
    if not _deterministic_under_seed(layer, cell):
        pytest.skip("training-mode masks do not come from torch's global RNG")
    _gradcheck_layer(layer, cell, num_layers=1, bidirectional=False, seed=4, reseed=99)


@pytest.mark.parametrize("cell", CELL_UNITS)
def test_gradcheck_cells(cell):
    torch.manual_seed(0)
    module = build_cell(rk, cell, I, H).to(DT)
    g = gen(7)
    x = randn(B, I, g=g, dtype=DT).requires_grad_(True)
    hs = [randn(B, H, g=g, dtype=DT).requires_grad_(True) for _ in range(2 if is_lstm(cell) else 1)]

    class Flat(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x, hx):
            return tuple(state_list(self.m(x, hx)))

    def builder(x, *hs):
        return (x, as_state(list(hs), cell)), {}

    _gradcheck_module(Flat(module), builder, [x, *hs])
