"""The fused C++ cells (rnnkit/nn/native) against the PyTorch-op cells they replace."""

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit.nn import cells, native
from rnnkit.nn.scan import ScanSpec, _Scan



@pytest.fixture(scope="module")
def ext():
    """The built extension (compiled on first use, not when the tests are collected)."""
    built = native.load()
    if built is None:
        pytest.skip("no C++ toolchain: the fused cells are not built here")
    return built


pytestmark = pytest.mark.usefixtures("ext")


@pytest.mark.parametrize("name", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reverse", [False, True])
def test_fused_cells_equal_pytorch_cells(name, dtype, reverse):
    torch.manual_seed(0)
    reference = cells.CELL_KINDS[name]
    fused = cells.fastest(reference, dtype)
    assert fused is not reference
    T, B, I, H = 6, 5, 3, 7
    G = reference.gates
    x = torch.randn(T, B, I, dtype=dtype, requires_grad=True)
    w_ih = torch.randn(G * H, I, dtype=dtype, requires_grad=True)
    b_ih = torch.randn(G * H, dtype=dtype, requires_grad=True)
    w_hh = (torch.randn(G * H, H, dtype=dtype) * 0.3).requires_grad_()
    h0 = torch.randn(B, H, dtype=dtype, requires_grad=True)
    c0 = torch.randn(B, H, dtype=dtype, requires_grad=True) if reference.has_cell_state else None
    b_hh = torch.randn(G * H, dtype=dtype, requires_grad=True) if reference.separate_recurrent else None
    results = []
    for kind in (reference, fused):
        # scan() picks the fastest kind itself; call the autograd Function with each kind directly.
        spec = ScanSpec(kind, (5, 5, 4, 2, 2, 1), reverse, True, kind.native)   # fused: the C++ loop
        out, h_n, c_n = _Scan.apply(spec, x, w_ih, b_ih, w_hh, h0, c0, b_hh, None, None, None, None)
        loss = (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum() + h_n.square().sum()
        if c_n is not None:
            loss = loss + c_n.square().sum()
        inputs = [t for t in (x, w_ih, b_ih, w_hh, h0, c0, b_hh) if t is not None]
        results.append([out, h_n] + list(torch.autograd.grad(loss, inputs)))
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("RNNKIT_NATIVE", "0")
    assert not native.enabled()


def test_scan_uses_fused_cells_when_built():
    assert cells.fastest(cells.LSTM, torch.float32).forward is not cells.LSTM.forward
    assert cells.fastest(cells.LSTM, torch.bfloat16) is cells.LSTM


def test_tensors_on_another_device_take_the_pytorch_cells():
    # The C++ cells read CPU memory; on a GPU the same equations run as PyTorch operations.
    assert cells.fastest(cells.LSTM, torch.float32, "cuda") is cells.LSTM
    assert cells.fastest(cells.GRU, torch.float64, "cuda") is cells.GRU


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru"])
@pytest.mark.parametrize("reverse", [False, True])
def test_fused_option_paths_equal_pytorch_cells(name, reverse):
    # Layer norm, zoneout (evaluation weight and training mask) and, for the LSTM, a projection:
    # the loop that runs in Python with the fused cells and the fused layer norm.
    torch.manual_seed(1)
    reference = cells.CELL_KINDS[name]
    fused = cells.fastest(reference, torch.float64)
    T, B, H = 5, 4, 6
    G, lstm = reference.gates, reference.has_cell_state
    Hr = 3 if lstm else H
    like = dict(dtype=torch.float64)
    gx = torch.randn(T, B, G * H, **like, requires_grad=True)
    w_hh = (torch.randn(G * H, Hr, **like) * 0.3).requires_grad_()
    h0 = torch.randn(B, Hr, **like, requires_grad=True)
    c0 = torch.randn(B, H, **like, requires_grad=True) if lstm else None
    b_hh = torch.randn(G * H, **like, requires_grad=True) if reference.separate_recurrent else None
    w_hr = (torch.randn(Hr, H, **like) * 0.3).requires_grad_() if lstm else None
    ln = (1 + 0.1 * torch.randn(G * H, **like)).requires_grad_()
    zoneout_h = torch.bernoulli(torch.full((T, B, Hr), 0.3, **like))
    zoneout_c = 0.2 if lstm else None
    results = []
    for kind in (reference, fused):
        spec = ScanSpec(kind, (4, 3, 3, 1, 1), reverse, True, False)            # options: Python loop
        out, h_n, c_n = _Scan.apply(spec, gx, None, None, w_hh, h0, c0, b_hh, w_hr, ln, zoneout_h, zoneout_c)
        loss = (out * torch.linspace(-1, 1, out.numel(), **like).view_as(out)).sum() + h_n.square().sum()
        if c_n is not None:
            loss = loss + c_n.square().sum()
        inputs = [t for t in (gx, w_hh, h0, c0, b_hh, w_hr, ln) if t is not None]
        results.append([out, h_n] + list(torch.autograd.grad(loss, inputs)))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("batch", [1, 3, 9])
def test_fused_streaming_step_equals_forward(mode, bias, batch):
    """step() at small batches runs as one C++ pass per layer (step_plain); it must give forward's
    results, also for hidden sizes that leave partial chunks of units (H=19) and for the batch past
    FUSED_STEP_ROWS that goes through BLAS instead."""
    from rnnkit.nn import GRU, LSTM, RNN
    from rnnkit.nn.layers import FUSED_STEP_ROWS

    assert 1 <= FUSED_STEP_ROWS < 9
    torch.manual_seed(1)
    layer = {"lstm": LSTM, "gru": GRU}.get(mode, RNN)
    kwargs = {"nonlinearity": mode[4:]} if mode.startswith("rnn") else {}
    model = layer(11, 19, num_layers=2, bias=bias, **kwargs).eval()
    x = torch.randn(5, batch, 11)
    with torch.no_grad():
        out, final = model(x)
        state, ys = None, []
        for t in range(x.shape[0]):
            y, state = model.step(x[t], state)
            ys.append(y)
    torch.testing.assert_close(torch.stack(ys), out, rtol=1e-5, atol=1e-6)
    for a, b in zip(state if isinstance(state, tuple) else (state,), final if isinstance(final, tuple) else (final,)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["rnn_relu", "lstm", "gru"])
def test_bfloat16_layers_stream_through_the_fused_step(mode, monkeypatch, ext):
    """A bfloat16 layer's step() runs the C++ pass too, summing and applying the gates in float32:
    its results match the bfloat16 forward() (PyTorch ops) and the float32 layer to bfloat16
    precision. H=70 leaves a tail of K past the 32-element blocks of the AVX512-BF16 kernel."""
    from rnnkit.nn import GRU, LSTM, RNN

    calls = []
    original = ext.step_stack
    monkeypatch.setattr(ext, "step_stack", lambda *args: calls.append(args[1].dtype) or original(*args))
    torch.manual_seed(3)
    layer = {"lstm": LSTM, "gru": GRU}.get(mode, RNN)
    kwargs = {"nonlinearity": "relu"} if mode == "rnn_relu" else {}
    full = layer(37, 70, num_layers=2, **kwargs).eval()
    half = layer(37, 70, num_layers=2, **kwargs).eval()
    half.load_state_dict(full.state_dict())
    half = half.bfloat16()
    x = torch.randn(12, 1, 37)
    with torch.no_grad():
        reference, _ = half(x.bfloat16())
        exact, _ = full(x)
        state, ys = None, []
        for t in range(x.shape[0]):
            y, state = half.step(x[t].bfloat16(), state)
            ys.append(y)
    ys = torch.stack(ys)
    assert ys.dtype == torch.bfloat16 and calls == [torch.bfloat16] * x.shape[0]
    torch.testing.assert_close(ys.float(), reference.float(), rtol=0, atol=1e-2)
    torch.testing.assert_close(ys.float(), exact, rtol=0, atol=1e-2)


@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_fused_step_gives_the_same_bits_in_either_walking_direction(mode):
    """Consecutive streaming steps walk the weights in alternating directions (cells.cpp,
    for_each_chunk), so that the weights read last are still in cache. Two steps from the same
    state must give bit-identical results, for a hidden size with several chunks per thread and a
    partial last chunk (H=70: five chunks of 16 units)."""
    from rnnkit.nn import GRU, LSTM, RNN

    torch.manual_seed(2)
    model = {"lstm": LSTM, "gru": GRU}.get(mode, RNN)(23, 70, num_layers=2).eval()
    x = torch.randn(1, 23)
    with torch.no_grad():
        _, state = model.step(x)
        first = model.step(x, state)
        second = model.step(x, state)
        reference, _ = model(x.unsqueeze(0), state)
    for a, b in zip(torch.utils._pytree.tree_leaves(first), torch.utils._pytree.tree_leaves(second)):
        assert torch.equal(a, b)
    torch.testing.assert_close(first[0], reference[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 9], ids=["fused", "blas"])
def test_streaming_step_checks_its_state_on_both_paths(batch):
    from rnnkit.nn import GRU, LSTM

    lstm, gru = LSTM(5, 7, num_layers=2).eval(), GRU(5, 7).eval()
    x = torch.randn(batch, 5)
    good = (torch.zeros(2, batch, 7), torch.zeros(2, batch, 7))
    with torch.no_grad():
        lstm.step(x, good)
        lstm.step(x, [good[0], good[1]])                             # a list pair is a state too
        with pytest.raises(ValueError, match=r"hx\[0\] \(h_0\) must have shape \(2, %d, 7\)" % batch):
            lstm.step(x, (torch.zeros(1, batch, 7), good[1]))
        with pytest.raises(ValueError, match="dtype"):
            lstm.step(x, (good[0].double(), good[1]))
        with pytest.raises(ValueError, match="pair"):
            lstm.step(x, good[0])
        with pytest.raises(ValueError, match="single tensor"):
            gru.step(x, good)
        with pytest.raises(ValueError, match="5"):
            gru.step(torch.randn(batch, 4))


def test_recurrent_weight_is_packed_where_pytorch_has_mkl(ext):
    # PyTorch's x86 wheels carry MKL; the loop finds its packed GEMM at run time (else at::mm).
    if torch.backends.mkl.is_available():
        assert ext.packed_gemm_available()


def test_a_build_the_compiler_refuses_with_the_cpu_flags_is_retried_portably(monkeypatch):
    tried = []

    def build(flags):
        tried.append(flags)
        if len(tried) == 1:
            raise RuntimeError("c++: error: unrecognized command-line option '-mavx512bf16'")
        return "portable module"

    monkeypatch.setattr(native, "_cpu_flags", lambda: ["-mavx512bf16"])
    monkeypatch.setattr(native, "_build", build)
    assert native.load.__wrapped__() == "portable module"
    assert tried == [["-O3", "-ffast-math", "-fopenmp", "-mavx512bf16"], ["-O3", "-ffast-math", "-fopenmp"]]


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_saturating_inputs_give_torchs_results_not_nan(mode, dtype):
    # Pre-activations in the hundreds (an unnormalised convolutional front end gives them) used to
    # overflow the vector exp/tanh of the fused kernels to inf / inf = NaN; torch's cells saturate.
    torch.manual_seed(0)
    ours_cls, ref_cls = {"lstm": (rnn.LSTM, torch.nn.LSTM), "gru": (rnn.GRU, torch.nn.GRU),
                         "rnn_tanh": (rnn.RNN, torch.nn.RNN)}[mode]
    ours = ours_cls(3, 5, bidirectional=True).to(dtype)
    ref = ref_cls(3, 5, bidirectional=True).to(dtype)
    ref.load_state_dict(ours.state_dict())
    x = (torch.randn(7, 2, 3, dtype=dtype) * 1e3).requires_grad_()
    y, y_ref = ours(x)[0], ref(x)[0]
    (g,) = torch.autograd.grad(y.sum(), x)
    (g_ref,) = torch.autograd.grad(y_ref.sum(), x)
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-4 * g_ref.abs().max().item())
    stepper = ours_cls(3, 5).to(dtype)
    out, state = stepper.step(x[0].detach())
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, stepper(x[:1].detach())[0][0])


def test_the_cells_fused_step_rows_are_the_layers():
    from rnnkit.nn import native
    from rnnkit.nn.layers import FUSED_STEP_ROWS

    lib = native.load()
    assert lib is None or lib.FUSED_STEP_ROWS == FUSED_STEP_ROWS


def test_denormals_are_flushed_on_every_intra_op_thread():
    """torch.set_flush_denormal sets the calling thread's MXCSR only; the extension's sets every
    intra-op thread's, so a GEMM split across two threads reads denormal inputs as zero in all rows."""
    previous = torch.get_num_threads()
    tiny = torch.full((512, 1024), 1e-39)                     # float32 denormals
    other = torch.rand(1024, 512) + 0.5                       # each product's sum, ~1e-36, is a normal float
    try:
        torch.set_num_threads(2)
        able = native.set_flush_denormal(True)                # False on a CPU that cannot (not x86)
        flushed = int(torch.count_nonzero(tiny @ other))
        native.set_flush_denormal(False)
        computed = int(torch.count_nonzero(tiny @ other))
    finally:
        native.set_flush_denormal(False)
        torch.set_num_threads(previous)
    assert computed == 512 * 512
    assert flushed == (0 if able else computed)
