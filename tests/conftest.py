"""Shared helpers for the rnnkit correctness tests.

The reference for every layer is the corresponding ``torch.nn`` module.  A
"cell" name selects the recurrent family and its variant:

    rnn_tanh, rnn_relu  -> nn.RNN with that nonlinearity
    lstm                -> nn.LSTM
    lstm_proj           -> nn.LSTM with 0 < proj_size < hidden_size
    gru                 -> nn.GRU
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import rnnkit.nn as rk

# Default profile keeps the whole suite within a few minutes on 2 cores; run
# HYPOTHESIS_PROFILE=stress pytest tests/test_parity.py for a deep search.
_HYP = dict(deadline=None, print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("rnnkit", max_examples=60, **_HYP)
settings.register_profile("stress", max_examples=2000, **_HYP)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "rnnkit"))

def pytest_configure(config):
    # torch's own reference LSTM(proj_size>0) warns on every call on CPU
    config.addinivalue_line(
        "filterwarnings", "ignore:LSTM with projections is not supported with oneDNN:UserWarning")


_NAN_FILL_MODULES = {"test_parity", "test_gradcheck", "test_inputs"}


@pytest.fixture(autouse=True, scope="module")
def _nan_filled_uninitialized_memory(request):
    """In the correctness suites, run with torch's deterministic mode, in which
    torch.empty / new_empty / empty_like return NaN-filled memory.  Any read of a
    buffer element the implementation never wrote then shows up as NaN instead
    of silently depending on whatever the allocator hands back.  (Other test
    modules, e.g. benchmarks, are left alone.)"""
    if request.module.__name__.rsplit(".", 1)[-1] not in _NAN_FILL_MODULES:
        yield
        return
    was_enabled = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    was_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    yield
    torch.utils.deterministic.fill_uninitialized_memory = was_fill
    torch.use_deterministic_algorithms(was_enabled, warn_only=was_warn_only)


CELLS = ("rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru")
FAMILIES = ("RNN", "LSTM", "GRU")

ATOL = 1e-5
RTOL = 1e-5


# --------------------------------------------------------------------------
# layer construction
# --------------------------------------------------------------------------
def family(cell: str) -> str:
    return {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "lstm_proj": "LSTM", "gru": "GRU"}[cell]


def is_lstm(cell: str) -> bool:
    return family(cell) == "LSTM"


def default_proj(cell: str, hidden_size: int, proj_size: int | None = None) -> int:
    """proj_size actually used for ``cell`` (0 unless lstm_proj)."""
    if cell != "lstm_proj":
        return 0
    if proj_size is None:
        proj_size = max(1, hidden_size // 2)
    assert 0 < proj_size < hidden_size, "lstm_proj needs 0 < proj_size < hidden_size"
    return proj_size


def out_size(cell: str, hidden_size: int, proj_size: int = 0) -> int:
    """Size of h (and of each direction's output features)."""
    return proj_size if (cell == "lstm_proj" and proj_size) else hidden_size


def cell_kwargs(cell: str, hidden_size: int, proj_size: int | None = None) -> dict:
    if cell == "rnn_tanh":
        return {"nonlinearity": "tanh"}
    if cell == "rnn_relu":
        return {"nonlinearity": "relu"}
    if cell == "lstm_proj":
        return {"proj_size": default_proj(cell, hidden_size, proj_size)}
    return {}


def build(ns, cell: str, input_size: int, hidden_size: int, *, proj_size: int | None = None, **kw):
    """Build ``cell`` from namespace ``ns`` (``torch.nn`` or ``rnnkit.nn``)."""
    cls = getattr(ns, family(cell))
    return cls(input_size, hidden_size, **cell_kwargs(cell, hidden_size, proj_size), **kw)


def make_pair(
    cell: str,
    input_size: int = 3,
    hidden_size: int = 4,
    *,
    seed: int = 0,
    dtype=torch.float32,
    proj_size: int | None = None,
    ours_kwargs: dict | None = None,
    **common,
):
    """(torch_layer, our_layer) with identical weights (torch's seeded init).

    ``common`` goes to both constructors (num_layers, bias, batch_first,
    bidirectional, ...); ``ours_kwargs`` only to ours (layer_norm, zoneout...).
    """
    torch.manual_seed(seed)
    ref = build(torch.nn, cell, input_size, hidden_size, proj_size=proj_size, dtype=dtype, **common)
    ours = build(rk, cell, input_size, hidden_size, proj_size=proj_size, dtype=dtype,
                 **common, **(ours_kwargs or {}))
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def make_ours(cell: str, input_size: int = 3, hidden_size: int = 4, *, seed: int = 0,
              proj_size: int | None = None, **kw):
    torch.manual_seed(seed)
    return build(rk, cell, input_size, hidden_size, proj_size=proj_size, **kw)


# cells ---------------------------------------------------------------------
CELL_UNITS = ("rnn_tanh", "rnn_relu", "lstm", "gru")


def build_cell(ns, cell: str, input_size: int, hidden_size: int, **kw):
    name = {"RNN": "RNNCell", "LSTM": "LSTMCell", "GRU": "GRUCell"}[family(cell)]
    if family(cell) == "RNN":
        kw["nonlinearity"] = "relu" if cell == "rnn_relu" else "tanh"
    return getattr(ns, name)(input_size, hidden_size, **kw)


def make_cell_pair(cell: str, input_size: int = 3, hidden_size: int = 4, *, seed: int = 0, **kw):
    torch.manual_seed(seed)
    ref = build_cell(torch.nn, cell, input_size, hidden_size, **kw)
    ours = build_cell(rk, cell, input_size, hidden_size, **kw)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def randn(*shape, g: torch.Generator, dtype=torch.float32, scale: float = 1.0):
    return torch.randn(*shape, generator=g, dtype=torch.float64).mul_(scale).to(dtype)


def make_input(T, B, I, *, g, batch_first=False, dtype=torch.float32):
    shape = (B, T, I) if batch_first else (T, B, I)
    return randn(*shape, g=g, dtype=dtype)


def make_state(cell, *, num_layers, bidirectional, batch, hidden_size, proj_size=0, g,
               dtype=torch.float32, unbatched=False):
    """hx in torch's format: h0 or (h0, c0); batch dim dropped when unbatched."""
    D = 2 if bidirectional else 1
    lead = (num_layers * D,) if unbatched else (num_layers * D, batch)
    h0 = randn(*lead, out_size(cell, hidden_size, proj_size), g=g, dtype=dtype)
    if is_lstm(cell):
        c0 = randn(*lead, hidden_size, g=g, dtype=dtype)
        return (h0, c0)
    return h0


def state_list(state) -> list:
    """hx / h_n (tensor or (h, c) tuple) as a list of tensors."""
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return list(state)
    return [state]


def as_state(tensors: list, cell: str):
    if not tensors:
        return None
    return (tensors[0], tensors[1]) if is_lstm(cell) else tensors[0]


def leaf_clones(tensors):
    return [t.detach().clone().requires_grad_(True) for t in tensors]


# --------------------------------------------------------------------------
# running layers in the three input modes
# --------------------------------------------------------------------------
MODES = ("padded", "packed", "lengths")


def run_ref(layer, x, hx, lengths, mode, batch_first):
    """Reference torch run.  Returns (padded_output_or_PackedSequence, final_state)."""
    if mode == "padded":
        return layer(x, hx)
    packed = pack_padded_sequence(x, torch.as_tensor(lengths), batch_first=batch_first,
                                  enforce_sorted=False)
    out, hn = layer(packed, hx)
    if mode == "packed":
        return out, hn
    T = x.shape[1] if batch_first else x.shape[0]
    out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    return out, hn


def run_ours(layer, x, hx, lengths, mode, batch_first):
    if mode == "padded":
        return layer(x, hx)
    if mode == "lengths":
        return layer(x, hx, lengths=torch.as_tensor(lengths))
    packed = pack_padded_sequence(x, torch.as_tensor(lengths), batch_first=batch_first,
                                  enforce_sorted=False)
    return layer(packed, hx)


def to_padded(out, batch_first, total_length):
    if isinstance(out, PackedSequence):
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=total_length)
    return out


def assert_packed_meta_equal(a: PackedSequence, b: PackedSequence):
    assert isinstance(a, PackedSequence) and isinstance(b, PackedSequence)
    assert torch.equal(a.batch_sizes, b.batch_sizes)
    for name in ("sorted_indices", "unsorted_indices"):
        ta, tb = getattr(a, name), getattr(b, name)
        assert (ta is None) == (tb is None), name
        if ta is not None:
            assert torch.equal(ta, tb), name


# --------------------------------------------------------------------------
# comparison helpers
# --------------------------------------------------------------------------
def close(actual, expected, msg="", rtol=RTOL, atol=ATOL):
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol,
                               msg=lambda m: f"{msg}\n{m}" if msg else m)


def weighted_loss(tensors, weights):
    return sum((t * w).sum() for t, w in zip(tensors, weights))


def random_weights_like(tensors, g):
    return [randn(*t.shape, g=g, dtype=t.dtype) for t in tensors]


def grads(loss, tensors):
    return torch.autograd.grad(loss, tensors, allow_unused=True)


def assert_grads_close(ref_named: dict, our_named: dict, what=""):
    assert set(ref_named) == set(our_named), (sorted(ref_named), sorted(our_named))
    for name in ref_named:
        r, o = ref_named[name], our_named[name]
        if r is None:
            assert o is None or torch.count_nonzero(o) == 0, f"{what}grad of {name}: expected none/zero"
            continue
        assert o is not None, f"{what}grad of {name} is None (parameter/input not used by rnnkit)"
        close(o, r, msg=f"{what}grad of {name}")


def compare_full(ref, ours, cell, x, hx, lengths, mode, batch_first, g):
    """Run both layers, compare outputs, final states and every gradient.

    ``x`` and ``hx`` are plain (non-leaf-required) tensors; each side gets its
    own leaf copies.  Gradients come from a random weighted sum of the padded
    outputs and all final-state tensors.
    """
    T = x.shape[1] if batch_first else x.shape[0]
    xr, xo = leaf_clones([x])[0], leaf_clones([x])[0]
    hr, ho = leaf_clones(state_list(hx)), leaf_clones(state_list(hx))

    out_r, hn_r = run_ref(ref, xr, as_state(hr, cell), lengths, mode, batch_first)
    out_o, hn_o = run_ours(ours, xo, as_state(ho, cell), lengths, mode, batch_first)

    if mode == "packed":
        assert isinstance(out_o, PackedSequence), f"packed input must give PackedSequence, got {type(out_o)}"
        assert_packed_meta_equal(out_o, out_r)
        close(out_o.data, out_r.data, "packed output data")
    else:
        assert not isinstance(out_o, PackedSequence)
    out_r = to_padded(out_r, batch_first, T)
    out_o = to_padded(out_o, batch_first, T)
    close(out_o, out_r, "output")

    if is_lstm(cell):
        assert isinstance(hn_o, tuple) and len(hn_o) == 2, "LSTM must return (h_n, c_n)"
    fr, fo = state_list(hn_r), state_list(hn_o)
    for name, a, b in zip(("h_n", "c_n"), fo, fr):
        close(a, b, name)

    weights = random_weights_like([out_r, *fr], g)
    loss_r = weighted_loss([out_r, *fr], weights)
    loss_o = weighted_loss([out_o, *fo], weights)

    ref_params = dict(ref.named_parameters())
    our_params = dict(ours.named_parameters())
    assert sorted(ref_params) == sorted(our_params), "parameter names differ"
    names = sorted(ref_params)
    in_names = ["input"] + [f"hx[{i}]" for i in range(len(hr))]
    gr = grads(loss_r, [xr, *hr, *[ref_params[n] for n in names]])
    go = grads(loss_o, [xo, *ho, *[our_params[n] for n in names]])
    assert_grads_close(dict(zip(in_names + names, gr)), dict(zip(in_names + names, go)))


def assert_same_stacked_outputs(ours, ref, cell, *, I, H, T, B, seed):
    """Run a 2-layer bidirectional pair on one random input and state (no grad); compare all results."""
    g = gen(seed)
    x = make_input(T, B, I, g=g)
    hx = make_state(cell, num_layers=2, bidirectional=True, batch=B, hidden_size=H,
                    proj_size=default_proj(cell, H), g=g)
    with torch.no_grad():
        out_o, hn_o = ours(x, hx)
        out_r, hn_r = ref(x, hx)
    close(out_o, out_r, "output")
    for a, b in zip(state_list(hn_o), state_list(hn_r)):
        close(a, b, "final state")


@pytest.fixture
def one_thread():
    """Tiny models: one thread is faster and immune to a busy machine's contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
