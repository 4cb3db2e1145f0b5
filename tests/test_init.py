"""reset_parameters: PyTorch's defaults, and the opt-ins for orthogonal W_hh and the forget-gate bias."""

import math

import pytest
import torch

import rnnkit.nn as rk


@pytest.mark.parametrize("cls", [rk.RNN, rk.LSTM, rk.GRU])
def test_default_init_is_pytorchs_uniform(cls):
    torch.manual_seed(0)
    layer = cls(7, 16, num_layers=2, bidirectional=True)
    bound = 1 / math.sqrt(16)
    for name, param in layer.named_parameters():
        assert param.abs().max() <= bound, name
        assert param.std() > bound / 3, name                   # spread over the range, not constant


@pytest.mark.parametrize("cls", [rk.RNN, rk.LSTM, rk.GRU])
def test_orthogonal_recurrent_init_makes_each_gate_block_orthogonal(cls):
    layer = cls(5, 8, num_layers=2, recurrent_init="orthogonal")
    for name, param in layer.named_parameters():
        if name.startswith("weight_hh"):
            for block in param.detach().split(8, dim=0):              # (H, H) per gate
                torch.testing.assert_close(block @ block.t(), torch.eye(8), atol=1e-5, rtol=0)


def test_forget_bias_sets_the_lstm_forget_gate_and_nothing_else():
    H = 6
    layer = rk.LSTM(4, H, num_layers=2, bidirectional=True, forget_bias=1.0)
    for name, param in layer.named_parameters():
        if name.startswith("bias_ih"):
            assert torch.all(param[H:2 * H] == 1.0), name
        if name.startswith("bias_hh"):
            assert torch.all(param[H:2 * H] == 0.0), name
    # The gate actually sees b_ih + b_hh = 1: with zero weights f = sigmoid(1).
    with torch.no_grad():
        for name, param in layer.named_parameters():
            if name.startswith("weight"):
                param.zero_()
    x = torch.zeros(1, 1, 4)
    _, (_, c_n) = layer(x, (torch.zeros(4, 1, H), torch.ones(4, 1, H)))
    i_times_g = torch.sigmoid(layer.bias_ih_l0[:H] + layer.bias_hh_l0[:H]) * torch.tanh(
        layer.bias_ih_l0[2 * H:3 * H] + layer.bias_hh_l0[2 * H:3 * H])
    torch.testing.assert_close(c_n[0, 0], torch.sigmoid(torch.tensor(1.0)) + i_times_g.detach())


@pytest.mark.parametrize("kwargs, match", [
    ({"recurrent_init": "xavier"}, "recurrent_init"),
    ({"zoneout": 1.0}, "zoneout"),
    ({"weight_drop": -0.1}, "weight_drop"),
    ({"dropout": 2}, "dropout"),
])
def test_bad_options_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rk.GRU(3, 4, **kwargs)


def test_forget_bias_is_an_lstm_option():
    with pytest.raises(ValueError, match="forget_bias"):
        rk.GRU(3, 4, forget_bias=1.0)
