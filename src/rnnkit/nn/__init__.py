"""The recurrent core: cells, layers, fast BPTT and regularisers. Drop-in for ``torch.nn``."""

from .adaptive import AdaptiveSoftmax
from .cell_modules import GRUCell, LSTMCell, RNNCell
from .heads import ManyToMany, ManyToOne, SequenceOutput
from .layers import GRU, LSTM, RNN, RNNBase, make_layer
from . import ops  # noqa: F401  (registers rnnkit::scan, for torch.compile, torch.export and their loaders)
from .onnx import onnx_translations
from .regularizers import drop_connect, locked_dropout, zoneout_weight
from .scan import scan
from .state import detach_state, hidden

__all__ = ["RNN", "LSTM", "GRU", "RNNBase", "make_layer", "ManyToMany", "ManyToOne", "SequenceOutput", "RNNCell", "LSTMCell", "GRUCell", "scan",
           "drop_connect", "locked_dropout", "zoneout_weight", "AdaptiveSoftmax", "detach_state", "hidden",
           "onnx_translations"]
