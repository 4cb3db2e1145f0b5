"""Numerical parity of rnnkit layers and cells with torch.nn (float32).

Outputs, final states and the gradients of input, initial state and every
parameter (by name) must match torch to rtol=atol=1e-5.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, note
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from conftest import (
    assert_same_stacked_outputs,
    CELL_UNITS,
    CELLS,
    MODES,
    as_state,
    build,
    close,
    compare_full,
    default_proj,
    gen,
    grads,
    is_lstm,
    leaf_clones,
    make_cell_pair,
    make_input,
    make_ours,
    make_pair,
    make_state,
    assert_grads_close,
    random_weights_like,
    randn,
    run_ours,
    run_ref,
    state_list,
    weighted_loss,
)


# --------------------------------------------------------------------------
# the hypothesis grid
# --------------------------------------------------------------------------
@st.composite
def grid_configs(draw):
    cell = draw(st.sampled_from(CELLS))
    T = draw(st.integers(1, 6))
    B = draw(st.integers(1, 4))
    I = draw(st.integers(1, 5))
    H = draw(st.integers(2 if cell == "lstm_proj" else 1, 5))
    proj = draw(st.integers(1, H - 1)) if cell == "lstm_proj" else 0
    mode = draw(st.sampled_from(MODES))
    lengths = None
    if mode != "padded":
        # unsorted lengths in [1, T] that always contain a length-1 sequence
        lengths = draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
        lengths[draw(st.integers(0, B - 1))] = 1
        lengths = draw(st.permutations(lengths))
    return dict(
        cell=cell, T=T, B=B, I=I, H=H, proj=proj, mode=mode, lengths=lengths,
        num_layers=draw(st.integers(1, 3)),
        bidirectional=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bias=draw(st.booleans()),
        with_state=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def _run_grid_case(c):
    ref, ours = make_pair(
        c["cell"], c["I"], c["H"], seed=c["seed"], proj_size=c["proj"] or None,
        num_layers=c["num_layers"], bias=c["bias"], batch_first=c["batch_first"],
        bidirectional=c["bidirectional"],
    )
    g = gen(c["seed"])
    x = make_input(c["T"], c["B"], c["I"], g=g, batch_first=c["batch_first"])
    hx = None
    if c["with_state"]:
        hx = make_state(c["cell"], num_layers=c["num_layers"], bidirectional=c["bidirectional"],
                        batch=c["B"], hidden_size=c["H"], proj_size=c["proj"], g=g)
    compare_full(ref, ours, c["cell"], x, hx, c["lengths"], c["mode"], c["batch_first"], g)


@given(grid_configs())
def test_parity_grid(c):
    note(repr(c))
    _run_grid_case(c)


# A deterministic sweep so that every cell x input mode x direction x state
# combination is exercised on every run, whatever hypothesis draws.
@pytest.mark.parametrize("with_state", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELLS)
def test_parity_sweep(cell, mode, bidirectional, with_state):
    T, B, I, H = 5, 4, 3, 4
    lengths = None if mode == "padded" else [3, 1, 5, 2]
    _run_grid_case(dict(
        cell=cell, T=T, B=B, I=I, H=H, proj=default_proj(cell, H), mode=mode, lengths=lengths,
        num_layers=2, bidirectional=bidirectional, batch_first=(mode == "lengths"), bias=True,
        with_state=with_state, seed=1234,
    ))


# Sequences of PACK_MIN_STEPS (8) steps or more run their recurrent products on a weight packed
# once per pass (MKL's packed GEMM, where PyTorch has MKL); shorter ones call at::mm each step.
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELLS)
def test_parity_long_sequences(cell, mode):
    T, B, I, H = 24, 6, 5, 7
    lengths = None if mode == "padded" else [9, 1, 24, 16, 8, 3]
    _run_grid_case(dict(
        cell=cell, T=T, B=B, I=I, H=H, proj=default_proj(cell, H), mode=mode, lengths=lengths,
        num_layers=2, bidirectional=True, batch_first=(mode == "lengths"), bias=True,
        with_state=True, seed=99,
    ))


@pytest.mark.parametrize("cell,which", [(c, w) for c in CELLS for w in ("output", "h_n", "c_n")
                                         if w != "c_n" or is_lstm(c)])
def test_gradients_when_only_one_result_is_used(cell, which):
    """Backward with some results unused (their incoming gradient is None)."""
    T, B, I, H = 5, 3, 3, 4
    ref, ours = make_pair(cell, I, H, num_layers=2, bidirectional=True, seed=41)
    x = make_input(T, B, I, g=gen(43))
    lengths = [2, 5, 1]
    names = sorted(n for n, _ in ref.named_parameters())
    results = {}
    for side, layer, run in (("ref", ref, run_ref), ("ours", ours, run_ours)):
        xl = leaf_clones([x])[0]
        out, hn = run(layer, xl, None, lengths, "lengths", False)
        picked = {"output": out, "h_n": state_list(hn)[0], "c_n": state_list(hn)[-1]}[which]
        results[side] = grads(picked.pow(2).sum(), [xl, *[layer.get_parameter(n) for n in names]])
    assert_grads_close(dict(zip(["input", *names], results["ref"])),
                       dict(zip(["input", *names], results["ours"])), f"{which} only: ")


# --------------------------------------------------------------------------
# state_dict compatibility
# --------------------------------------------------------------------------
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("cell", CELLS)
def test_state_dict_names_and_shapes_match_torch(cell, bias, bidirectional):
    torch.manual_seed(0)
    ref = build(torch.nn, cell, 3, 4, num_layers=2, bias=bias, bidirectional=bidirectional)
    ours = make_ours(cell, 3, 4, num_layers=2, bias=bias, bidirectional=bidirectional)
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert sorted(ref_sd) == sorted(our_sd)
    for k in ref_sd:
        assert our_sd[k].shape == ref_sd[k].shape, k
        assert our_sd[k].dtype == ref_sd[k].dtype, k
    assert sorted(n for n, _ in ref.named_parameters()) == sorted(n for n, _ in ours.named_parameters())


@pytest.mark.parametrize("cell", CELLS)
def test_state_dict_ours_to_torch(cell):
    """Our (own-initialised) weights loaded into torch give the same outputs."""
    T, B, I, H = 5, 3, 3, 4
    ours = make_ours(cell, I, H, seed=7, num_layers=2, bidirectional=True)
    ref = build(torch.nn, cell, I, H, num_layers=2, bidirectional=True)
    ref.load_state_dict(ours.state_dict(), strict=True)
    for n, p in ours.named_parameters():
        assert torch.equal(p, ref.get_parameter(n)), n
    assert_same_stacked_outputs(ours, ref, cell, I=I, H=H, T=T, B=B, seed=3)


# --------------------------------------------------------------------------
# unbatched (2-D) input
# --------------------------------------------------------------------------
@pytest.mark.parametrize("with_state", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("cell", CELLS)
def test_unbatched_input(cell, with_state):
    T, I, H, L = 5, 3, 4, 2
    proj = default_proj(cell, H)
    ref, ours = make_pair(cell, I, H, num_layers=L, bidirectional=True, seed=11)
    g = gen(5)
    x = randn(T, I, g=g)
    hx = None
    if with_state:
        hx = make_state(cell, num_layers=L, bidirectional=True, batch=None, hidden_size=H,
                        proj_size=proj, g=g, unbatched=True)
    xr, xo = leaf_clones([x])[0], leaf_clones([x])[0]
    hr, ho = leaf_clones(state_list(hx)), leaf_clones(state_list(hx))
    out_r, hn_r = ref(xr, as_state(hr, cell))
    out_o, hn_o = ours(xo, as_state(ho, cell))
    assert out_o.shape == out_r.shape == (T, 2 * (proj or H))
    close(out_o, out_r, "output")
    for a, b in zip(state_list(hn_o), state_list(hn_r)):
        assert a.shape == b.shape
        close(a, b, "final state")
    w = random_weights_like([out_r, *state_list(hn_r)], g)
    names = sorted(n for n, _ in ref.named_parameters())
    in_names = ["input"] + [f"hx[{i}]" for i in range(len(hr))]
    gr = grads(weighted_loss([out_r, *state_list(hn_r)], w),
               [xr, *hr, *[ref.get_parameter(n) for n in names]])
    go = grads(weighted_loss([out_o, *state_list(hn_o)], w),
               [xo, *ho, *[ours.get_parameter(n) for n in names]])
    assert_grads_close(dict(zip(in_names + names, gr)), dict(zip(in_names + names, go)))


# --------------------------------------------------------------------------
# lengths= form
# --------------------------------------------------------------------------
@pytest.mark.parametrize("batch_first", [False, True], ids=["tbi", "bti"])
@pytest.mark.parametrize("cell", CELLS)
def test_lengths_form_equals_packed_form(cell, batch_first):
    T, B, I, H = 6, 4, 3, 4
    ours = make_ours(cell, I, H, num_layers=2, bidirectional=True, batch_first=batch_first, seed=2)
    g = gen(8)
    x = make_input(T, B, I, g=g, batch_first=batch_first)
    hx = make_state(cell, num_layers=2, bidirectional=True, batch=B, hidden_size=H,
                    proj_size=default_proj(cell, H), g=g)
    lengths = [2, 6, 1, 4]
    with torch.no_grad():
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first,
                                      enforce_sorted=False)
        out_p, hn_p = ours(packed, hx)
        out_p, _ = pad_packed_sequence(out_p, batch_first=batch_first, total_length=T)
        for lens in (torch.tensor(lengths), lengths, torch.tensor(lengths, dtype=torch.int32)):
            out_l, hn_l = ours(x, hx, lengths=lens)
            assert out_l.shape == out_p.shape
            close(out_l, out_p, f"output, lengths given as {type(lens).__name__}")
            for a, b in zip(state_list(hn_l), state_list(hn_p)):
                close(a, b, "final state")


@pytest.mark.parametrize("cell", CELLS)
def test_inter_layer_dropout_eval_equals_torch(cell):
    ref, ours = make_pair(cell, 3, 4, num_layers=3, dropout=0.5, seed=5)
    ref.eval()
    ours.eval()
    x = make_input(5, 3, 3, g=gen(6))
    with torch.no_grad():
        out_r, hn_r = ref(x)
        out_o, hn_o = ours(x)
    close(out_o, out_r, "output")
    for a, b in zip(state_list(hn_o), state_list(hn_r)):
        close(a, b, "final state")
    ours.train()
    with torch.no_grad():
        torch.manual_seed(0)
        assert not torch.allclose(ours(x)[0], out_r), "dropout=0.5 had no effect in training"


def test_lengths_all_full_equals_no_lengths():
    T, B, I, H = 5, 3, 3, 4
    for cell in CELLS:
        ours = make_ours(cell, I, H, num_layers=2, bidirectional=True, seed=4)
        x = make_input(T, B, I, g=gen(1))
        with torch.no_grad():
            out_a, hn_a = ours(x)
            out_b, hn_b = ours(x, lengths=[T] * B)
        close(out_b, out_a, cell)
        for a, b in zip(state_list(hn_b), state_list(hn_a)):
            close(a, b, cell)


# --------------------------------------------------------------------------
# streaming step()
# --------------------------------------------------------------------------
@pytest.mark.parametrize("with_state", [False, True], ids=["no_state", "state"])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_step_loop_equals_forward(cell, num_layers, with_state):
    T, B, I, H = 6, 3, 3, 4
    ours = make_ours(cell, I, H, num_layers=num_layers, seed=9)
    g = gen(13)
    x = make_input(T, B, I, g=g)
    hx = None
    if with_state:
        hx = make_state(cell, num_layers=num_layers, bidirectional=False, batch=B, hidden_size=H,
                        proj_size=default_proj(cell, H), g=g)
    with torch.no_grad():
        out, hn = ours(x, hx)
        state = hx
        ys = []
        for t in range(T):
            y, state = ours.step(x[t], state)
            ys.append(y)
    y = torch.stack(ys)
    assert y.shape == out.shape
    close(y, out, "step outputs vs forward output")
    if is_lstm(cell):
        assert isinstance(state, tuple) and len(state) == 2
    else:
        assert isinstance(state, torch.Tensor)
    for a, b in zip(state_list(state), state_list(hn)):
        assert a.shape == b.shape
        close(a, b, "step final state vs forward final state")


@pytest.mark.parametrize("cell", CELLS)
def test_step_batch_first_and_unbatched(cell):
    """step takes (B, I) whatever batch_first is, and (I,) with an unbatched state."""
    Tl, Bl, I, H = 4, 2, 3, 4
    ours = make_ours(cell, I, H, num_layers=2, seed=23, batch_first=True)
    x = make_input(Tl, Bl, I, g=gen(29), batch_first=True)          # (B, T, I)
    with torch.no_grad():
        out, hn = ours(x)
        state, ys = None, []
        for t in range(Tl):
            y, state = ours.step(x[:, t], state)
            ys.append(y)
        close(torch.stack(ys, dim=1), out, "batch_first step outputs")
        for a, b in zip(state_list(state), state_list(hn)):
            close(a, b, "batch_first step state")
        # one unbatched sequence
        out1, hn1 = ours(x[:1])
        state, ys = None, []
        for t in range(Tl):
            y, state = ours.step(x[0, t], state)
            assert y.dim() == 1
            ys.append(y)
        close(torch.stack(ys), out1[0], "unbatched step outputs")
        for a, b in zip(state_list(state), state_list(hn1)):
            close(a, b[:, 0], "unbatched step state")


@pytest.mark.parametrize("cell", CELLS)
def test_step_gradients_equal_forward(cell):
    """Backprop through a step() loop equals backprop through forward()."""
    T, B, I, H = 4, 2, 3, 4
    ours = make_ours(cell, I, H, num_layers=2, seed=21)
    g = gen(17)
    x = make_input(T, B, I, g=g)
    hx = make_state(cell, num_layers=2, bidirectional=False, batch=B, hidden_size=H,
                    proj_size=default_proj(cell, H), g=g)
    names = sorted(n for n, _ in ours.named_parameters())
    params = [ours.get_parameter(n) for n in names]

    xa, ha = leaf_clones([x])[0], leaf_clones(state_list(hx))
    out, hn = ours(xa, as_state(ha, cell))
    w = random_weights_like([out, *state_list(hn)], g)
    ga = grads(weighted_loss([out, *state_list(hn)], w), [xa, *ha, *params])

    xb, hb = leaf_clones([x])[0], leaf_clones(state_list(hx))
    state, ys = as_state(hb, cell), []
    for t in range(T):
        y, state = ours.step(xb[t], state)
        ys.append(y)
    gb = grads(weighted_loss([torch.stack(ys), *state_list(state)], w), [xb, *hb, *params])
    in_names = ["input"] + [f"hx[{i}]" for i in range(len(ha))]
    assert_grads_close(dict(zip(in_names + names, ga)), dict(zip(in_names + names, gb)), "step: ")


# --------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELL_UNITS)
def test_cell_paths_without_a_graph_with_one_output_used_and_in_float64_agree_with_torch(cell):
    """The cell's three routes: no graph (the loop's step), the C++ step under autograd with only
    h' used (an LSTM's c' gets no gradient), and numerical gradients of the float64 step."""
    ref, ours = make_cell_pair(cell, 4, 5, seed=7)
    g = gen(3)
    x = randn(6, 4, g=g)
    hx = (randn(6, 5, g=g), randn(6, 5, g=g)) if is_lstm(cell) else randn(6, 5, g=g)
    with torch.no_grad():
        for a, b in zip(state_list(ours(x, hx)), state_list(ref(x, hx))):
            close(a, b, "cell output without a graph")
    xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    first = lambda y: y[0] if isinstance(y, tuple) else y                                # noqa: E731
    first(ref(xr, hx)).pow(2).sum().backward()
    first(ours(xo, hx)).pow(2).sum().backward()
    close(xo.grad, xr.grad, "input gradient from h' alone")
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        close(p.grad, q.grad, f"{name} gradient from h' alone")
    ours64 = ours.double()
    x64 = x.double().requires_grad_()
    h64 = tuple(t.double().requires_grad_() for t in state_list(hx))
    assert torch.autograd.gradcheck(lambda x, *h: ours64(x, as_state(list(h), cell)), (x64, *h64))
    with pytest.raises(RuntimeError, match="gradients of gradients"):      # refused, not silently wrong
        torch.autograd.grad(first(ours64(x64, as_state(list(h64), cell))).sum(), x64, create_graph=True)


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("with_state", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("cell", CELL_UNITS)
def test_cell_parity(cell, bias, with_state, batched):
    B, I, H = 3, 4, 5
    ref, ours = make_cell_pair(cell, I, H, bias=bias, seed=31)
    assert sorted(ref.state_dict()) == sorted(ours.state_dict())
    g = gen(19)
    lead = (B,) if batched else ()
    x = randn(*lead, I, g=g)
    hx = None
    if with_state:
        hx = (randn(*lead, H, g=g), randn(*lead, H, g=g)) if is_lstm(cell) else randn(*lead, H, g=g)
    xr, xo = leaf_clones([x])[0], leaf_clones([x])[0]
    hr, ho = leaf_clones(state_list(hx)), leaf_clones(state_list(hx))
    yr = ref(xr, as_state(hr, cell))
    yo = ours(xo, as_state(ho, cell))
    yr, yo = state_list(yr), state_list(yo)
    assert len(yr) == len(yo)
    for a, b in zip(yo, yr):
        assert a.shape == b.shape
        close(a, b, "cell output")
    w = random_weights_like(yr, g)
    names = sorted(n for n, _ in ref.named_parameters())
    in_names = ["input"] + [f"hx[{i}]" for i in range(len(hr))]
    gr = grads(weighted_loss(yr, w), [xr, *hr, *[ref.get_parameter(n) for n in names]])
    go = grads(weighted_loss(yo, w), [xo, *ho, *[ours.get_parameter(n) for n in names]])
    assert_grads_close(dict(zip(in_names + names, gr)), dict(zip(in_names + names, go)), "cell: ")
