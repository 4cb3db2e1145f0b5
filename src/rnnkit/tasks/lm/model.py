"""The language model: embedding -> recurrent layers -> decoder, and text generation.

AWD-LSTM's regularisers are options: locked (variational) dropout between layers and on the
embeddings and outputs, embedding dropout (whole words), weight drop on ``W_hh``, and weight tying
(the decoder reuses the embedding matrix; the last layer then has ``embedding_size`` units).
For word vocabularies the decoder can be an adaptive softmax (``softmax_cutoffs``,
``rnnkit.nn.adaptive``), which trains faster when the vocabulary is large.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterator, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn import locked_dropout, make_layer
from rnnkit.nn.adaptive import AdaptiveSoftmax, check_cutoffs


@dataclass
class LMConfig:
    """The model's shape and regularisers (saved in every checkpoint).

    Args:
        vocab_size: number of tokens. cell: "lstm", "gru", "rnn". embedding_size, hidden_size, num_layers.
        dropout: locked dropout on layer outputs (between layers and before the decoder).
        input_dropout: locked dropout on the embeddings. embedding_dropout: drop whole words.
        weight_drop: DropConnect on each layer's ``W_hh``. tie_weights: decoder weight = embedding.
        init_range: initialise every parameter uniformly in [-init_range, init_range] (Zaremba et al.
            use 0.1); None keeps each layer's default initialisation.
        softmax_cutoffs: None for a full softmax decoder, or the first id of each tail cluster of an
            adaptive softmax (the vocabulary sorted by frequency, as word vocabularies are).
    """

    vocab_size: int
    cell: str = "lstm"
    embedding_size: int = 256
    hidden_size: int = 512
    num_layers: int = 2
    dropout: float = 0.0
    input_dropout: float = 0.0
    embedding_dropout: float = 0.0
    weight_drop: float = 0.0
    tie_weights: bool = False
    init_range: Optional[float] = None
    softmax_cutoffs: Optional[List[int]] = None

    def __post_init__(self):
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("dropout", "input_dropout", "embedding_dropout", "weight_drop"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if self.init_range is not None and not self.init_range > 0:
            raise ValueError(f"init_range must be > 0 or None, got {self.init_range!r}")
        if self.softmax_cutoffs is not None:
            self.softmax_cutoffs = check_cutoffs(self.softmax_cutoffs, self.vocab_size)


def embedding_dropout(embedding: nn.Embedding, tokens: Tensor, p: float, training: bool) -> Tensor:
    """Embed ``tokens`` with whole rows of the embedding dropped (probability ``p``), rescaled."""
    weight = embedding.weight
    if training and p > 0:
        mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
        weight = weight * mask
    return F.embedding(tokens, weight)


class LanguageModel(nn.Module):
    """Next-token model.

    Inputs: tokens (T, B) int64; state: a list with one state per layer, or None.
    Outputs: logits (T, B, vocab_size) (with an adaptive softmax: log-probabilities, which are
    logits too), the new state (detach it between truncated-BPTT windows).
    ``loss(tokens, targets, state)``: the mean next-token negative log-likelihood and the new state.
    """

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        sizes = [config.embedding_size] + [config.hidden_size] * (config.num_layers - 1)
        last = config.embedding_size if config.tie_weights else config.hidden_size
        outs = [config.hidden_size] * (config.num_layers - 1) + [last]
        self.layers = nn.ModuleList(
            make_layer(config.cell, i, o, weight_drop=config.weight_drop) for i, o in zip(sizes, outs))
        if config.softmax_cutoffs:
            self.decoder = AdaptiveSoftmax(last, config.vocab_size, config.softmax_cutoffs)
        else:
            self.decoder = nn.Linear(last, config.vocab_size)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        if config.init_range is not None:
            for parameter in self.parameters():
                nn.init.uniform_(parameter, -config.init_range, config.init_range)

    def features(self, tokens: Tensor, state: Optional[List] = None):
        """The top layer's outputs (T, B, D) as the decoder sees them, and the new state."""
        config = self.config
        x = embedding_dropout(self.embedding, tokens, config.embedding_dropout, self.training)   # (T, B, E)
        x = locked_dropout(x, config.input_dropout, self.training)
        states = []
        for k, layer in enumerate(self.layers):
            x, layer_state = layer(x, None if state is None else state[k])
            x = locked_dropout(x, config.dropout, self.training)
            states.append(layer_state)
        return x, states

    def forward(self, tokens: Tensor, state: Optional[List] = None):
        x, states = self.features(tokens, state)
        return self.decoder(x), states                                                          # (T, B, V)

    def loss(self, tokens: Tensor, targets: Tensor, state: Optional[List] = None):
        """Mean negative log-likelihood of ``targets`` (T, B) and the new state. An adaptive
        softmax computes only the clusters the targets are in."""
        x, states = self.features(tokens, state)
        x, y = x.reshape(-1, x.shape[-1]), targets.reshape(-1)                                  # (T*B, D), (T*B,)
        if isinstance(self.decoder, AdaptiveSoftmax):
            return self.decoder.loss(x, y), states
        return F.cross_entropy(self.decoder(x).float(), y), states

    def config_dict(self) -> dict:
        return asdict(self.config)

    @torch.no_grad()
    def generate(self, prompt: Sequence[int], length: int, *, temperature: float = 1.0,
                 top_k: Optional[int] = None, top_p: Optional[float] = None,
                 generator: Optional[torch.Generator] = None) -> Iterator[int]:
        """Sample ``length`` tokens after ``prompt``, yielding each as it is drawn.

        ``temperature=0`` is greedy (the most likely token); ``top_k`` keeps the k likeliest;
        ``top_p`` keeps the smallest set whose probability reaches p (nucleus sampling).
        """
        _check_sampling(prompt, length, temperature, top_k, top_p)
        was_training = self.training
        self.eval()
        try:
            logits, state = self(torch.as_tensor(list(prompt), dtype=torch.long).unsqueeze(1))
            last = logits[-1, 0]
            for _ in range(length):
                token = sample(last, temperature, top_k, top_p, generator)
                yield token
                logits, state = self(torch.tensor([[token]]), state)
                last = logits[-1, 0]
        finally:
            self.train(was_training)


def sample(logits: Tensor, temperature: float, top_k: Optional[int], top_p: Optional[float],
           generator: Optional[torch.Generator] = None) -> int:
    """One token from (V,) ``logits``: greedy at temperature 0, else filtered softmax sampling."""
    if temperature == 0:
        return int(logits.argmax())
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.numel():
        threshold = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    if top_p is not None and top_p < 1.0:
        order = torch.argsort(logits, descending=True)
        cumulative = torch.softmax(logits[order], 0).cumsum(0)
        drop = cumulative - torch.softmax(logits[order], 0) >= top_p    # keep up to and including the p-th mass
        logits = logits.clone()
        logits[order[drop]] = float("-inf")
    return int(torch.multinomial(torch.softmax(logits, 0), 1, generator=generator))


def _check_sampling(prompt, length, temperature, top_k, top_p) -> None:
    if len(prompt) == 0:
        raise ValueError("prompt must hold at least one token")
    if not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be a non-negative integer, got {length!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature!r}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


# --- the task the engine trains ------------------------------------------------------------------

def _detach(state):
    # Cut the graph at a truncated-BPTT boundary, keeping the values.
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state) if isinstance(state, tuple) else [_detach(s) for s in state]


class LanguageModelTask:
    """Next-token prediction over ``rnnkit.data.Window`` batches, for ``rnnkit.train.Trainer``.

    The hidden state is carried from one window to the next (detached: truncated BPTT) and reset
    when a window starts a new pass (``start == 0``). It is part of the checkpoint, so a resumed
    run continues with the state it had.

    Args:
        model: a ``LanguageModel``. vocab: its ``rnnkit.data.Vocabulary``.
    """

    def __init__(self, model: LanguageModel, vocab):
        self.model, self.vocab = model, vocab
        self.train_state = self.valid_state = None

    def training_step(self, batch) -> Tensor:
        x, y, start = batch
        loss, state = self.model.loss(x, y, None if start == 0 else self.train_state)
        self.train_state = _detach(state)
        return loss

    def validation_step(self, batch) -> dict:
        x, y, start = batch
        loss, state = self.model.loss(x, y, None if start == 0 else self.valid_state)
        self.valid_state = state
        return {"loss": loss.item()}

    def config(self) -> dict:
        return {"task": "lm", "model": self.model.config_dict(), "vocab": self.vocab.to_dict()}

    def state_dict(self) -> dict:
        return {"train_state": self.train_state}

    def load_state_dict(self, state: dict) -> None:
        self.train_state = state["train_state"]


class TrainedLanguageModel:
    """A language model loaded from a checkpoint, ready to generate text.

    Attributes: ``model`` (``LanguageModel``, in eval mode), ``vocab``, ``config`` (the checkpoint's).
    """

    def __init__(self, model: LanguageModel, vocab, config: dict):
        self.model, self.vocab, self.config = model.eval(), vocab, config

    def generate(self, prompt: str, length: int, *, temperature: float = 1.0, top_k: Optional[int] = None,
                 top_p: Optional[float] = None, seed: Optional[int] = None) -> Iterator[str]:
        """Text after ``prompt``, one token at a time: a character, a word or a subword piece, with the
        space before it where one belongs (joined, the pieces read as ``vocab.decode`` of all the ids).

        Raises ValueError for a prompt the vocabulary cannot encode or bad sampling arguments.
        """
        ids = self.vocab.encode(prompt)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        previous = prompt[-1:]
        for token in self.model.generate(ids, length, temperature=temperature, top_k=top_k, top_p=top_p,
                                         generator=generator):
            text = self.vocab.decode([token], previous)
            previous = (previous + text)[-1:]
            yield text


def load(path) -> TrainedLanguageModel:
    """Rebuild the language model saved in ``path`` (a run directory or a checkpoint directory)."""
    from rnnkit.data import Vocabulary
    from rnnkit.train.checkpoint import load_task_model

    model, task, checkpoint = load_task_model(path, "lm", "a language-model",
                                              lambda task: LanguageModel(LMConfig(**task["model"])))
    return TrainedLanguageModel(model, Vocabulary.from_dict(task["vocab"]), checkpoint.config)
