"""Small helpers for recurrent states, which are a tensor ``h`` (RNN, GRU), a pair ``(h, c)`` (LSTM),
or a list of those (a stack of layers run one by one)."""

from __future__ import annotations

from typing import Any

from torch import Tensor


def detach_state(state: Any) -> Any:
    """The same state cut from the graph (a truncated-BPTT boundary), values kept; None stays None.

    Inputs: a tensor, a tuple ``(h, c)``, a list of states, or None. Outputs: the same structure.
    """
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state) if isinstance(state, tuple) else [detach_state(s) for s in state]


def hidden(state: Any) -> Tensor:
    """``h`` of a layer's state: the state itself for an RNN or GRU, ``h`` of an LSTM's ``(h, c)``.

    Inputs: ``h_n`` (L*D, B, H) or ``(h_n, c_n)``. Outputs: ``h_n``.
    """
    return state[0] if isinstance(state, tuple) else state
