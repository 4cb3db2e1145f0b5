"""rnnkit layers where code written for ``torch.nn``'s goes: ``torch.save`` of a whole model and its
safe reload, ``flatten_parameters()``, and a one-line refusal of TorchScript and of the tracing
ONNX exporter (which would otherwise record the native kernels' output as a constant)."""

from __future__ import annotations

import io

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit.nn.recurrent_module import TRACING_REFUSED


class Model(torch.nn.Module):
    """A small model holding an rnnkit layer, as pytorch/examples' word_language_model does."""

    def __init__(self, layer):
        super().__init__()
        self.rnn = layer
        self.head = torch.nn.Linear(layer.hidden_size * (2 if getattr(layer, "bidirectional", False) else 1), 3)

    def forward(self, x):
        out = self.rnn(x)[0]
        return self.head(out if out.dim() == 3 else out.unsqueeze(0))


LAYERS = [lambda: rnn.LSTM(4, 6, num_layers=2), lambda: rnn.GRU(4, 6, bidirectional=True),
          lambda: rnn.RNN(4, 6, nonlinearity="relu"), lambda: rnn.LSTM(4, 6, proj_size=3)]


@pytest.mark.parametrize("make", LAYERS)
def test_a_saved_model_reloads_with_weights_only_and_gives_the_same_outputs(make):
    torch.manual_seed(0)
    layer = make()
    model = Model(layer) if layer.proj_size == 0 else layer
    x = torch.randn(5, 2, 4)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    with torch.serialization.safe_globals([type(layer), Model, torch.nn.Linear]):
        loaded = torch.load(buffer, weights_only=True)
    loaded.rnn.flatten_parameters() if isinstance(loaded, Model) else loaded.flatten_parameters()
    first, again = model(x), loaded(x)
    torch.testing.assert_close(first[0] if isinstance(first, tuple) else first,
                               again[0] if isinstance(again, tuple) else again, rtol=0, atol=0)


def test_a_saved_cell_reloads_with_weights_only():
    cell = rnn.LSTMCell(3, 5)
    buffer = io.BytesIO()
    torch.save(cell, buffer)
    buffer.seek(0)
    with torch.serialization.safe_globals([rnn.LSTMCell]):
        loaded = torch.load(buffer, weights_only=True)
    x = torch.randn(2, 3)
    torch.testing.assert_close(cell(x)[0], loaded(x)[0], rtol=0, atol=0)


def test_torchscript_is_refused_in_one_line():
    model = Model(rnn.LSTM(4, 6))
    with pytest.raises(RuntimeError, match="TorchScript cannot compile rnnkit layers") as info:
        torch.jit.script(model)
    assert "\n" not in str(info.value)
    with pytest.raises(RuntimeError) as info:
        torch.jit.trace(model, torch.randn(5, 2, 4))
    assert TRACING_REFUSED in str(info.value)


def test_the_tracing_onnx_exporter_is_refused_rather_than_writing_a_constant(tmp_path):
    model = Model(rnn.GRU(4, 6))
    with pytest.raises(Exception) as info:
        torch.onnx.export(model, (torch.randn(5, 2, 4),), str(tmp_path / "m.onnx"), dynamo=False)
    assert TRACING_REFUSED in str(info.value)
    assert not (tmp_path / "m.onnx").exists()
