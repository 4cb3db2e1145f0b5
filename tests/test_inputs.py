"""Input handling: validation errors, variable-length contract, packed
sequences, and the options torch lacks (zoneout, weight_drop)."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from conftest import (
    assert_same_stacked_outputs,
    CELLS,
    as_state,
    build_cell,
    close,
    default_proj,
    gen,
    is_lstm,
    leaf_clones,
    make_input,
    make_ours,
    make_pair,
    make_state,
    out_size,
    randn,
    state_list,
)

REPRESENTATIVE = ("rnn_tanh", "lstm", "gru")  # one per family (RNN, LSTM, GRU)
T, B, I, H, L = 5, 3, 3, 4, 2


def _layer_and_data(cell, **kw):
    layer = make_ours(cell, I, H, num_layers=L, bidirectional=True, **kw)
    g = gen(0)
    x = make_input(T, B, I, g=g, batch_first=kw.get("batch_first", False))
    hx = make_state(cell, num_layers=L, bidirectional=True, batch=B, hidden_size=H,
                    proj_size=default_proj(cell, H), g=g)
    return layer, x, hx


# --------------------------------------------------------------------------
# ValueError with the argument named
# --------------------------------------------------------------------------
@pytest.mark.parametrize("batch_first", [False, True], ids=["tbi", "bti"])
@pytest.mark.parametrize("cell", REPRESENTATIVE)
def test_wrong_input_feature_size(cell, batch_first):
    layer, x, _ = _layer_and_data(cell, batch_first=batch_first)
    bad = torch.randn(*x.shape[:-1], I + 1)
    with pytest.raises(ValueError, match=r"(?i)input"):
        layer(bad)


@pytest.mark.parametrize("cell", REPRESENTATIVE)
def test_wrong_input_feature_size_unbatched(cell):
    layer, _, _ = _layer_and_data(cell)
    with pytest.raises(ValueError, match=r"(?i)input"):
        layer(torch.randn(T, I + 2))


@pytest.mark.parametrize("cell", REPRESENTATIVE)
def test_wrong_input_rank(cell):
    layer, _, _ = _layer_and_data(cell)
    with pytest.raises(ValueError, match=r"(?i)input"):
        layer(torch.randn(T, B, 1, I))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
@pytest.mark.parametrize("cell", REPRESENTATIVE)
def test_non_floating_input(cell, dtype):
    layer, x, _ = _layer_and_data(cell)
    bad = torch.ones(x.shape, dtype=dtype)
    with pytest.raises(ValueError, match=r"(?is)(?=.*input)(?=.*(dtype|float|int|bool|long))"):
        layer(bad)


@pytest.mark.parametrize("cell", REPRESENTATIVE)
def test_input_of_another_dtype_than_the_weights(cell):
    """A float64 or bfloat16 input to a float32 layer: a ValueError saying how to convert, from
    forward() and from step() (both its paths)."""
    layer, x, _ = _layer_and_data(cell)
    for dtype in (torch.float64, torch.bfloat16):
        with pytest.raises(ValueError, match=r"(?s)input has dtype.*convert"):
            layer(x.to(dtype))
    streaming = make_ours(cell, I, H).eval()
    for rows in (1, 9):                                  # the fused pass, and BLAS past FUSED_STEP_ROWS
        with torch.no_grad(), pytest.raises(ValueError, match=r"(?s)input has dtype.*convert"):
            streaming.step(torch.randn(rows, I, dtype=torch.float64))


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cell_input_of_another_dtype_than_the_weights(name):
    import rnnkit.nn as rnn

    cell = getattr(rnn, name)(I, H)
    with pytest.raises(ValueError, match=r"(?s)input has dtype.*convert"):
        cell(torch.randn(B, I, dtype=torch.float64))


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "graph"])
def test_cell_state_that_would_broadcast_or_convert_is_refused(name, grad):
    # the C++ step checks shapes itself: a (1, H) or (H,) state or one of another dtype must not
    # broadcast or convert silently, and the message is the module's
    import rnnkit.nn as rnn

    cell = getattr(rnn, name)(I, H)
    x = torch.randn(B, I)
    for bad, pattern in ((torch.zeros(1, H), r"hx must have shape \(%d, %d\)" % (B, H)),
                         (torch.zeros(B, H + 1), r"hx must have shape"),
                         (torch.zeros(B, H, dtype=torch.float64), r"(?s)state.*dtype")):
        state = (bad, torch.zeros(B, H)) if name == "LSTMCell" else bad
        with torch.set_grad_enabled(grad), pytest.raises(ValueError, match=pattern) as info:
            cell(x, state)
        assert "\n" not in str(info.value)
    if name == "LSTMCell":
        with pytest.raises(ValueError, match=r"cx must have shape"):
            cell(x, (torch.zeros(B, H), torch.zeros(1, H)))
    good = (torch.zeros(B, H), torch.zeros(B, H)) if name == "LSTMCell" else torch.zeros(B, H)
    out = cell(x, good)
    assert (out[0] if name == "LSTMCell" else out).shape == (B, H)


def _bad_hx_variants(cell):
    """(label, hx) pairs, each with exactly one wrong dimension."""
    D = 2
    Hh = out_size(cell, H, default_proj(cell, H))
    good_h = torch.zeros(L * D, B, Hh)
    good_c = torch.zeros(L * D, B, H)
    bad_shapes = {
        "batch": (L * D, B + 1),
        "layers": (L * D + 1, B),
        "layers_fewer": (L * D - 1, B),
    }
    out = []
    for label, lead in bad_shapes.items():
        h = torch.zeros(*lead, Hh)
        out.append((f"h_{label}", (h, torch.zeros(*lead, H)) if is_lstm(cell) else h))
    h_hid = torch.zeros(L * D, B, Hh + 1)
    out.append(("h_hidden", (h_hid, good_c) if is_lstm(cell) else h_hid))
    h_2d = torch.zeros(B, Hh)
    out.append(("h_2d_for_batched_input", (h_2d, torch.zeros(B, H)) if is_lstm(cell) else h_2d))
    if is_lstm(cell):
        out.append(("c_hidden", (good_h, torch.zeros(L * D, B, H + 1))))
        out.append(("c_batch", (good_h, torch.zeros(L * D, B + 1, H))))
    return out


_HX_CASES = [(cell, label) for cell in REPRESENTATIVE + ("lstm_proj",)
             for label, _ in _bad_hx_variants(cell)]


@pytest.mark.parametrize("cell,label", _HX_CASES, ids=[f"{c}-{l}" for c, l in _HX_CASES])
def test_wrong_hx_shape(cell, label):
    layer, x, hx = _layer_and_data(cell)
    layer(x, hx)  # the well-formed state is accepted
    bad = dict(_bad_hx_variants(cell))[label]
    with pytest.raises(ValueError, match=r"(?i)\bhx"):
        layer(x, bad)


def test_lstm_proj_hx_with_hidden_size_instead_of_proj_size():
    cell = "lstm_proj"
    layer, x, _ = _layer_and_data(cell)
    bad = (torch.zeros(L * 2, B, H), torch.zeros(L * 2, B, H))  # h should have proj_size features
    with pytest.raises(ValueError, match=r"(?i)hx"):
        layer(x, bad)


@pytest.mark.parametrize(
    "lengths",
    [
        pytest.param([T + 1, 2, 3], id="longer_than_T"),
        pytest.param([0, 2, 3], id="zero"),
        pytest.param([3, -1, 2], id="negative"),
        pytest.param([3, 2], id="too_few"),
        pytest.param([3, 2, 1, 1], id="too_many"),
    ],
)
@pytest.mark.parametrize("as_tensor", [True, False], ids=["tensor", "list"])
@pytest.mark.parametrize("cell", REPRESENTATIVE)
def test_bad_lengths(cell, lengths, as_tensor):
    layer, x, hx = _layer_and_data(cell)
    lens = torch.tensor(lengths) if as_tensor else lengths
    with pytest.raises(ValueError, match=r"(?i)lengths"):
        layer(x, hx, lengths=lens)


@pytest.mark.parametrize("cell", REPRESENTATIVE)
def test_bad_lengths_batch_first(cell):
    layer, x, _ = _layer_and_data(cell, batch_first=True)  # x is (B, T, I)
    with pytest.raises(ValueError, match=r"(?i)lengths"):
        layer(x, lengths=[T + 1, 1, 1])
    with pytest.raises(ValueError, match=r"(?i)lengths"):
        layer(x, lengths=[1] * T if T != B else [1] * (B + 1))  # count must be B, not T


# --------------------------------------------------------------------------
# contract for padded steps with lengths=
# --------------------------------------------------------------------------
def _pad_with(x, lengths, value, batch_first):
    x = x.clone()
    for b, n in enumerate(lengths):
        if batch_first:
            x[b, n:] = value
        else:
            x[n:, b] = value
    return x


@pytest.mark.parametrize("batch_first", [False, True], ids=["tbi", "bti"])
@pytest.mark.parametrize("cell", CELLS)
def test_padded_steps_contract(cell, batch_first):
    """Each sequence in the batch behaves as if run alone, truncated to its length."""
    Tl, lengths = 6, [3, 1, 4, 2]  # max(lengths) < T: trailing all-padding steps too
    Bl = len(lengths)
    layer = make_ours(cell, I, H, num_layers=L, bidirectional=True, batch_first=batch_first, seed=3)
    g = gen(4)
    x = make_input(Tl, Bl, I, g=g, batch_first=batch_first)
    x = _pad_with(x, lengths, 1e3, batch_first)  # garbage at padded steps
    hx = make_state(cell, num_layers=L, bidirectional=True, batch=Bl, hidden_size=H,
                    proj_size=default_proj(cell, H), g=g)
    xl = leaf_clones([x])[0]
    out, hn = layer(xl, hx, lengths=lengths)
    assert out.shape[:2] == x.shape[:2]
    if not batch_first:
        out_b = out.transpose(0, 1)  # (B, T, F)
    else:
        out_b = out
    for b, n in enumerate(lengths):
        xb = x[b, :n] if batch_first else x[:n, b]
        hb = as_state([s[:, b:b + 1] for s in state_list(hx)], cell)
        xb = xb.unsqueeze(0) if batch_first else xb.unsqueeze(1)
        with torch.no_grad():
            ob, hnb = layer(xb, hb)
        ob = ob[0] if batch_first else ob[:, 0]
        close(out_b[b, :n], ob, f"sequence {b}: outputs at real steps")
        assert torch.equal(out_b[b, n:], torch.zeros_like(out_b[b, n:])), \
            f"sequence {b}: outputs at padded steps must be exactly zero"
        for name, full, alone in zip(("h_n", "c_n"), state_list(hn), state_list(hnb)):
            close(full[:, b], alone[:, 0], f"sequence {b}: {name} must be the state at the last real step")

    # padded steps have no influence: zero gradient there
    (gx,) = torch.autograd.grad(out.sum() + sum(s.sum() for s in state_list(hn)), xl)
    gx_b = gx if batch_first else gx.transpose(0, 1)
    for b, n in enumerate(lengths):
        assert torch.equal(gx_b[b, n:], torch.zeros_like(gx_b[b, n:])), f"sequence {b}"


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("cell", CELLS)
def test_padded_steps_ignore_non_finite_padding(cell, value):
    """torch's pack_padded_sequence never reads padded entries, so whatever is
    stored there (even NaN/inf) must not leak into outputs, states or grads."""
    lengths = [2, 5, 1]
    layer, x, hx = _layer_and_data(cell, seed=5)
    ref = _layer_and_data(cell, seed=5)[0]
    xc = _pad_with(x, lengths, 0.0, False)
    xn = leaf_clones([_pad_with(x, lengths, value, False)])[0]
    out_n, hn_n = layer(xn, hx, lengths=lengths)
    with torch.no_grad():
        out_c, hn_c = ref(xc, hx, lengths=lengths)
    close(out_n, out_c, "output")
    for a, b in zip(state_list(hn_n), state_list(hn_c)):
        close(a, b, "final state")
    (gx,) = torch.autograd.grad(out_n.sum() + sum(s.sum() for s in state_list(hn_n)), xn)
    assert torch.isfinite(gx).all(), "non-finite padding leaked into the input gradient"


# --------------------------------------------------------------------------
# PackedSequence in -> PackedSequence out
# --------------------------------------------------------------------------
@pytest.mark.parametrize("enforce_sorted", [False, True], ids=["unsorted", "sorted"])
@pytest.mark.parametrize("cell", CELLS)
def test_packed_in_packed_out(cell, enforce_sorted):
    layer, x, hx = _layer_and_data(cell)
    lengths = [5, 3, 1] if enforce_sorted else [3, 5, 1]
    packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=enforce_sorted)
    out, hn = layer(packed, hx)
    assert isinstance(out, PackedSequence)
    assert torch.equal(out.batch_sizes, packed.batch_sizes)
    if enforce_sorted:
        assert out.sorted_indices is None and out.unsorted_indices is None
    else:
        assert torch.equal(out.sorted_indices, packed.sorted_indices)
        assert torch.equal(out.unsorted_indices, packed.unsorted_indices)
    assert out.data.shape == (sum(lengths), 2 * out_size(cell, H, default_proj(cell, H)))
    assert out.data.dtype == x.dtype
    for s, s0 in zip(state_list(hn), state_list(hx)):
        assert s.shape == s0.shape


# --------------------------------------------------------------------------
# zoneout (eval mode is deterministic)
# --------------------------------------------------------------------------
def _torch_cell_from_layer(cell, layer, suffix="_l0"):
    torch_cell = build_cell(torch.nn, cell, layer.input_size, layer.hidden_size)
    torch_cell.load_state_dict({
        "weight_ih": layer.get_parameter("weight_ih" + suffix),
        "weight_hh": layer.get_parameter("weight_hh" + suffix),
        "bias_ih": layer.get_parameter("bias_ih" + suffix),
        "bias_hh": layer.get_parameter("bias_hh" + suffix),
    })
    return torch_cell


@pytest.mark.parametrize("p", [0.3, 0.75])
@pytest.mark.parametrize("cell", ("rnn_tanh", "rnn_relu", "lstm", "gru"))
def test_zoneout_eval_one_step(cell, p):
    layer = make_ours(cell, I, H, seed=8, zoneout=p).eval()
    g = gen(9)
    x = randn(1, B, I, g=g)
    hx = make_state(cell, num_layers=1, bidirectional=False, batch=B, hidden_size=H, g=g)
    tc = _torch_cell_from_layer(cell, layer)
    with torch.no_grad():
        out, hn = layer(x, hx)
        new = tc(x[0], tuple(s[0] for s in hx) if is_lstm(cell) else hx[0])
    h0 = state_list(hx)[0][0]
    h_new = new[0] if is_lstm(cell) else new
    expected_h = p * h0 + (1 - p) * h_new
    close(out[0], expected_h, "output = p*h_prev + (1-p)*h_new")
    close(state_list(hn)[0][0], expected_h, "h_n = p*h_prev + (1-p)*h_new")
    if is_lstm(cell):
        c0, c_new, c_n = hx[1][0], new[1], hn[1][0]
        zoned = p * c0 + (1 - p) * c_new
        assert torch.allclose(c_n, zoned, atol=1e-6) or torch.allclose(c_n, c_new, atol=1e-6), \
            "c_n is neither the zoned-out cell state nor the plain cell update"


@pytest.mark.parametrize("cell", ("rnn_tanh", "gru"))
def test_zoneout_eval_recurrence(cell):
    p, Tl = 0.4, 4
    layer = make_ours(cell, I, H, seed=10, zoneout=p).eval()
    g = gen(11)
    x = randn(Tl, B, I, g=g)
    h = randn(1, B, H, g=g)
    tc = _torch_cell_from_layer(cell, layer)
    with torch.no_grad():
        out, hn = layer(x, h)
        hs, ht = [], h[0]
        for t in range(Tl):
            ht = p * ht + (1 - p) * tc(x[t], ht)
            hs.append(ht)
    close(out, torch.stack(hs), "zoneout recurrence")
    close(hn[0], ht)


@pytest.mark.parametrize("cell", CELLS)
def test_zoneout_zero_equals_torch(cell):
    ref, ours = make_pair(cell, I, H, num_layers=2, bidirectional=True, ours_kwargs={"zoneout": 0.0})
    x = make_input(T, B, I, g=gen(1))
    with torch.no_grad():
        for mode in ("train", "eval"):
            getattr(ours, mode)()
            close(ours(x)[0], ref(x)[0], mode)


# --------------------------------------------------------------------------
# weight_drop (DropConnect on weight_hh)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_weight_drop_eval_equals_plain_layer(cell):
    ref, ours = make_pair(cell, I, H, num_layers=2, bidirectional=True,
                          ours_kwargs={"weight_drop": 0.5})
    ours.eval()
    ref.eval()
    assert_same_stacked_outputs(ours, ref, cell, I=I, H=H, T=T, B=B, seed=2)


@pytest.mark.parametrize("cell", CELLS)
def test_weight_drop_training(cell):
    layer = make_ours(cell, I, 5, num_layers=2, seed=12, weight_drop=0.5)
    hh_names = [n for n, _ in layer.named_parameters() if n.startswith("weight_hh")]
    assert hh_names == ["weight_hh_l0", "weight_hh_l1"]
    stored = {n: layer.get_parameter(n).detach().clone() for n in hh_names}
    x = make_input(T, B, I, g=gen(3))

    layer.eval()
    with torch.no_grad():
        out_eval = layer(x)[0]

    layer.train()
    layer.zero_grad()
    torch.manual_seed(100)
    out_a = layer(x)[0]
    assert not torch.allclose(out_a, out_eval), "weight_drop in training did not change the output"
    torch.manual_seed(101)
    with torch.no_grad():
        out_b = layer(x)[0]
    assert not torch.allclose(out_a, out_b), "weight_drop masks are not resampled between calls"

    out_a.pow(2).sum().backward()
    for n in hh_names:
        p = layer.get_parameter(n)
        assert isinstance(p, torch.nn.Parameter), f"{n} is no longer a Parameter"
        assert torch.equal(p.detach(), stored[n]), f"{n} was modified by the forward pass"
        assert p.grad is not None, f"{n} received no gradient"
        assert torch.count_nonzero(p.grad) > 0, f"{n} received an all-zero gradient"
    assert set(stored) <= {n for n, _ in layer.named_parameters()}
    # the layer still behaves exactly as before once back in eval mode
    layer.eval()
    with torch.no_grad():
        close(layer(x)[0], out_eval, "eval output after a training step")


# --------------------------------------------------------------------------
# scratch buffers: nothing uninitialised may leak into results
# --------------------------------------------------------------------------
@pytest.mark.parametrize("option", [{}, {"layer_norm": True}, {"zoneout": 0.3}],
                         ids=["plain", "layer_norm", "zoneout_eval"])
@pytest.mark.parametrize("cell", CELLS)
def test_variable_lengths_gradients_finite_with_nan_filled_empty(cell, option):
    """With deterministic mode on, torch.empty() returns NaN-filled memory
    (conftest enables it for the whole session; re-asserted here).  Results
    and gradients with lengths= must still be finite: any NaN means a buffer
    row of an inactive (padded) step was read without being written."""
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory
    layer, x, hx = _layer_and_data(cell, **option)
    layer.eval()
    x = x.requires_grad_(True)
    hx = [h.requires_grad_(True) for h in state_list(hx)]
    out, hn = layer(x, as_state(hx, cell), lengths=[2, 5, 1])
    assert all(torch.isfinite(t).all() for t in [out, *state_list(hn)])
    (out.sum() + sum(s.sum() for s in state_list(hn))).backward()
    bad = [n for n, p in layer.named_parameters() if not torch.isfinite(p.grad).all()]
    bad += [f"hx[{i}]" for i, h in enumerate(hx) if not torch.isfinite(h.grad).all()]
    bad += ["input"] if not torch.isfinite(x.grad).all() else []
    assert not bad, f"non-finite gradients: {bad}"


# --------------------------------------------------------------------------
# layer_norm
# --------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_layer_norm_is_scale_invariant(cell):
    """Layer-normalised pre-activations (no bias) do not change when every
    weight feeding them is multiplied by the same positive constant.  (Exact
    up to the LayerNorm eps, whose effect falls as 1/scale^2: the weights are
    first made large and the check is done in float64.)"""
    kw = dict(num_layers=2, bias=False, seed=14, dtype=torch.float64)
    layer = make_ours(cell, I, H, layer_norm=True, **kw)
    plain = make_ours(cell, I, H, **kw)
    x = make_input(T, B, I, g=gen(15), dtype=torch.float64)

    def scale_weights(module, factor):
        for name, p in module.named_parameters():
            if name.startswith(("weight_ih", "weight_hh")):
                p.mul_(factor)

    with torch.no_grad():
        scale_weights(layer, 100.0)
        out_a, _ = layer(x)
        scale_weights(layer, 3.0)
        out_b, _ = layer(x)
        scale_weights(plain, 300.0)
        out_plain = plain(x)[0]
    close(out_b, out_a, "layer_norm output changed under weight scaling", rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out_plain, out_b, atol=1e-3), "layer_norm=True had no effect"


@pytest.mark.parametrize("cell", CELLS)
def test_layer_norm_parameters_get_gradients(cell):
    layer = make_ours(cell, I, H, seed=16, layer_norm=True)
    ref = make_ours(cell, I, H, seed=16)
    extra = sorted(set(layer.state_dict()) - set(ref.state_dict()))
    assert extra, "layer_norm=True adds no parameters (expected learnable gains)"
    out, hn = layer(make_input(T, B, I, g=gen(17)))
    (out.pow(2).sum() + state_list(hn)[0].sum()).backward()
    for n, p in layer.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, n
