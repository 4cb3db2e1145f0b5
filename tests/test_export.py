"""rnnkit layers under ``torch.compile``, ``torch.export`` and ONNX export (``rnnkit::scan``).

The time loop is a ``torch.library`` custom operator with a fake implementation and an autograd
formula (``rnnkit.nn.ops``): compiled and exported programs must give eager mode's outputs and
gradients, at batch sizes and lengths the tracer never saw.
"""

from __future__ import annotations

import pytest
import torch
from torch.export import Dim

import rnnkit.nn as rnn
from rnnkit.nn.ops import scan_op

pytestmark = pytest.mark.usefixtures("one_thread")

# (class, keyword arguments) of the layers each check runs over
LAYERS = [
    (rnn.RNN, dict(nonlinearity="tanh")),
    (rnn.RNN, dict(nonlinearity="relu", bias=False)),
    (rnn.LSTM, dict(num_layers=2, bidirectional=True)),
    (rnn.LSTM, dict(proj_size=3, batch_first=True)),
    (rnn.GRU, dict(num_layers=2, batch_first=True)),
    (rnn.GRU, dict(bidirectional=True)),
]
IDS = ["rnn_tanh", "rnn_relu_nobias", "lstm_2layer_bi", "lstm_proj_bf", "gru_2layer_bf", "gru_bi"]


class WithState(torch.nn.Module):
    """A layer given an initial state, returning its output and final h (and c)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, h0):
        if isinstance(self.layer, rnn.LSTM):
            c0 = torch.zeros(h0.shape[0], h0.shape[1], self.layer.hidden_size, dtype=h0.dtype) + 0.1
            out, (h, c) = self.layer(x, (h0, c0))
            return out, h, c
        out, h = self.layer(x, h0)
        return out, h


def make(cls, kwargs, seed=0):
    torch.manual_seed(seed)
    return WithState(cls(4, 6, **kwargs))


def inputs(module, T, B):
    layer = module.layer
    x = torch.randn(B, T, 4) if layer.batch_first else torch.randn(T, B, 4)
    h0 = torch.randn(layer.num_layers * (2 if layer.bidirectional else 1), B, layer.proj_size or layer.hidden_size)
    return x, h0


def dynamic(module):
    T, B = Dim("T", min=2, max=64), Dim("B", min=2, max=64)
    x = {0: B, 1: T} if module.layer.batch_first else {0: T, 1: B}
    return {"x": x, "h0": {1: B}}


@pytest.mark.parametrize("cls, kwargs", LAYERS, ids=IDS)
def test_compiled_layer_equals_eager_in_outputs_and_gradients(cls, kwargs):
    module = make(cls, kwargs)
    compiled = torch.compile(module, backend="aot_eager", fullgraph=True, dynamic=True)
    for T, B in ((5, 3), (8, 2)):
        x, h0 = inputs(module, T, B)
        x.requires_grad_()
        eager, traced = module(x, h0), compiled(x, h0)
        for a, b in zip(eager, traced):
            torch.testing.assert_close(b, a, rtol=0, atol=0)
        wrt = [x, *module.parameters()]
        loss = lambda outs: sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs)  # noqa: E731
        for a, b in zip(torch.autograd.grad(loss(eager), wrt), torch.autograd.grad(loss(traced), wrt)):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)


def test_inductor_compiles_a_training_step_to_eagers_results():
    torch.manual_seed(0)
    lstm, head = rnn.LSTM(4, 8), torch.nn.Linear(8, 1)

    def loss_of(x):
        return head(lstm(x)[0]).pow(2).mean()

    x = torch.randn(6, 3, 4)
    eager = loss_of(x)
    eager_grads = torch.autograd.grad(eager, [*lstm.parameters(), *head.parameters()])
    compiled = torch.compile(loss_of)                              # the default backend, inductor
    loss = compiled(x)
    grads = torch.autograd.grad(loss, [*lstm.parameters(), *head.parameters()])
    torch.testing.assert_close(loss, eager, rtol=1e-5, atol=1e-6)
    for a, b in zip(eager_grads, grads):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls, kwargs", LAYERS, ids=IDS)
def test_exported_program_has_dynamic_batch_and_time_and_round_trips(cls, kwargs, tmp_path):
    module = make(cls, kwargs).eval()
    program = torch.export.export(module, inputs(module, 5, 3), dynamic_shapes=dynamic(module))
    torch.export.save(program, tmp_path / "layer.pt2")
    loaded = torch.export.load(tmp_path / "layer.pt2").module()
    for T, B in ((9, 2), (3, 7)):
        x, h0 = inputs(module, T, B)
        for a, b in zip(module(x, h0), loaded(x, h0)):
            torch.testing.assert_close(b, a, rtol=0, atol=0)


@pytest.mark.parametrize("cls, kwargs", LAYERS, ids=IDS)
def test_onnx_export_runs_in_onnxruntime_at_new_shapes(cls, kwargs, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the test extra; install rnnkit[test]")
    module = make(cls, kwargs).eval()
    path = tmp_path / "layer.onnx"
    torch.onnx.export(module, inputs(module, 5, 3), str(path), dynamo=True, dynamic_shapes=dynamic(module),
                      custom_translation_table=rnn.onnx_translations(), verbose=False)
    session = ort.InferenceSession(str(path))
    names = [i.name for i in session.get_inputs()]
    for T, B in ((9, 2), (3, 7)):
        x, h0 = inputs(module, T, B)
        got = session.run(None, dict(zip(names, (x.numpy(), h0.numpy()))))
        for want, have in zip(module(x, h0), got):
            torch.testing.assert_close(torch.from_numpy(have), want, rtol=1e-4, atol=1e-4)


# options ONNX's recurrent operators lack: each becomes an ONNX Scan over one step of the cell
LOOP_LAYERS = [
    (rnn.LSTM, dict(layer_norm=True)),
    (rnn.LSTM, dict(zoneout=0.3, bidirectional=True, batch_first=True)),
    (rnn.LSTM, dict(num_layers=2, proj_size=3, layer_norm=True, zoneout=0.2)),
    (rnn.GRU, dict(layer_norm=True, zoneout=0.1, bidirectional=True)),
    (rnn.RNN, dict(nonlinearity="relu", layer_norm=True)),
    (rnn.RNN, dict(zoneout=0.2, bias=False)),
]
LOOP_IDS = ["lstm_ln", "lstm_zoneout_bi_bf", "lstm_2layer_proj_ln_zoneout", "gru_ln_zoneout_bi", "rnn_relu_ln",
            "rnn_zoneout_nobias"]


@pytest.mark.parametrize("cls, kwargs", LOOP_LAYERS, ids=LOOP_IDS)
def test_layer_norm_and_zoneout_export_to_onnx_as_a_loop(cls, kwargs, tmp_path):
    test_onnx_export_runs_in_onnxruntime_at_new_shapes(cls, kwargs, tmp_path)


@pytest.mark.parametrize("mode, gates", [("lstm", 4), ("gru", 3), ("rnn_tanh", 1)])
def test_the_scan_operator_passes_torch_librarys_opcheck(mode, gates):
    # schema, fake implementation (shapes and dtypes), autograd registration and aliasing rules
    torch.manual_seed(0)
    T, B, I, H = 4, 3, 2, 5

    def leaf(*shape):
        return torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    c0 = leaf(B, H) if mode == "lstm" else None
    b_hh = leaf(gates * H) if mode == "gru" else None
    args = (leaf(T, B, I), leaf(gates * H, I), leaf(gates * H), leaf(gates * H, H), leaf(B, H), c0, b_hh,
            None, None, None, None, None, mode, [], False, True)
    torch.library.opcheck(scan_op, args)


@pytest.mark.parametrize("cls", [rnn.LSTM, rnn.GRU])
def test_gradcheck_through_the_operator(cls):
    torch.manual_seed(0)
    layer = cls(2, 3, bidirectional=True).double()
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    compiled = torch.compile(lambda x: layer(x)[0], backend="aot_eager", fullgraph=True)
    assert torch.autograd.gradcheck(compiled, (x,))


def test_layer_norm_and_zoneout_compile_to_eagers_results():
    torch.manual_seed(0)
    layer = rnn.LSTM(4, 6, layer_norm=True, zoneout=0.2).eval()      # evaluation zoneout: the fixed p
    x = torch.randn(5, 3, 4)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x)[0], layer(x)[0], rtol=0, atol=0)


class WithLengths(torch.nn.Module):
    """A classifier's shape: padded batch_first input and its lengths -> output and final h."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, lengths):
        out, state = self.layer(x, lengths=lengths)
        return out, (state[0] if isinstance(state, tuple) else state)


LENGTH_LAYERS = [(rnn.LSTM, dict(num_layers=2, bidirectional=True, batch_first=True)),
                 (rnn.GRU, dict(bidirectional=True, batch_first=True)),
                 (rnn.RNN, dict(batch_first=True)),
                 (rnn.LSTM, dict(num_layers=2, bidirectional=True, batch_first=True, proj_size=3))]
LENGTH_IDS = ["lstm_2layer_bi", "gru_bi", "rnn_tanh", "lstm_proj_2layer_bi"]
# (exported in evaluation mode, where zoneout is deterministic)
EXPORT_LENGTH_LAYERS = LENGTH_LAYERS + [(rnn.GRU, dict(bidirectional=True, batch_first=True, layer_norm=True,
                                                       zoneout=0.2))]
EXPORT_LENGTH_IDS = LENGTH_IDS + ["gru_ln_zoneout_bi"]


def padded(B, T, seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    x = torch.randn(B, T, 4, generator=g) * (torch.arange(T) < lengths.unsqueeze(1)).unsqueeze(-1)
    return x, lengths


@pytest.mark.parametrize("cls, kwargs", LENGTH_LAYERS, ids=LENGTH_IDS)
def test_lengths_compile_without_a_graph_break_and_match_eager(cls, kwargs):
    torch.manual_seed(0)
    module = WithLengths(cls(4, 6, **kwargs))
    compiled = torch.compile(module, backend="aot_eager", fullgraph=True, dynamic=True)
    for B, T, seed in ((4, 6, 0), (3, 9, 1)):
        x, lengths = padded(B, T, seed)
        x.requires_grad_()
        eager, traced = module(x, lengths), compiled(x, lengths)
        for a, b in zip(eager, traced):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
        wrt = [x, *module.parameters()]
        for a, b in zip(torch.autograd.grad(sum(o.sum() for o in eager), wrt),
                        torch.autograd.grad(sum(o.sum() for o in traced), wrt)):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls, kwargs", EXPORT_LENGTH_LAYERS, ids=EXPORT_LENGTH_IDS)
def test_lengths_export_to_a_program_and_to_onnx(cls, kwargs, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the test extra; install rnnkit[test]")
    torch.manual_seed(0)
    module = WithLengths(cls(4, 6, **kwargs)).eval()
    B, T = Dim("B", min=2, max=64), Dim("T", min=2, max=64)
    shapes = {"x": {0: B, 1: T}, "lengths": {0: B}}
    example = padded(3, 5, 0)
    program = torch.export.export(module, example, dynamic_shapes=shapes).module()
    path = tmp_path / "lengths.onnx"
    torch.onnx.export(module, example, str(path), dynamo=True, dynamic_shapes=shapes,
                      custom_translation_table=rnn.onnx_translations(), verbose=False)
    session = ort.InferenceSession(str(path))
    names = [i.name for i in session.get_inputs()]
    for B, T, seed in ((4, 7, 1), (2, 3, 2)):
        x, lengths = padded(B, T, seed)
        want = module(x, lengths)
        for a, b in zip(want, program(x, lengths)):
            torch.testing.assert_close(b, a, rtol=0, atol=0)
        got = session.run(None, dict(zip(names, (x.numpy(), lengths.numpy()))))
        for a, b in zip(want, got):
            torch.testing.assert_close(torch.from_numpy(b), a, rtol=1e-4, atol=1e-4)
