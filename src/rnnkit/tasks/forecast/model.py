"""The forecaster: a stack of rnnkit layers over each window's steps, and two decoders.

Every step's input is the scaled value (0 where missing) and whether it was observed, its lags,
the known features (calendar, future covariates), the past covariates, log(scale) (so that the
network knows the level it was scaled from) and, if on, the series' id embedding.

- ``direct`` (MQ-RNN, Wen et al. 2017): the encoder reads the L context steps; a global layer
  turns its last state into one context vector per horizon step, and a local layer reads each with
  that step's known features (and, with ``decoder_lags``, its lagged values that lie in the
  history) to give every quantile at once. Trained with the pinball loss.
- ``autoregressive`` (DeepAR, Salinas et al. 2020): the network reads step t-1's value and step
  t's features and gives the distribution of step t (Gaussian, Student-t, or negative binomial for
  counts), trained by maximum likelihood over the whole window; forecasts roll forward on its own
  samples, ``samples`` paths per series, and quantiles are read from them.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, distributions, nn

from rnnkit.nn import make_layer

from .config import ForecastModel
from .windows import ForecastBatch


class Forecaster(nn.Module):
    """Forecast windows (``ForecastBatch``) with the decoder ``config.decoder`` says.

    Inputs: a ``ForecastBatch`` of B windows of L + H steps.
    Outputs: ``loss(batch)``: the mean training loss over observed targets; ``quantiles(batch,
    levels)``: (B, H, Q) scaled quantile forecasts, increasing along Q.
    """

    def __init__(self, config: ForecastModel):
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.num_series, c.id_embedding) if c.id_embedding and c.num_series else None
        width = 2 + len(self.lags) + c.known_features + c.past_features + 1 + (c.id_embedding if self.embedding else 0)
        sizes = [width] + [c.hidden_size] * c.num_layers
        self.layers = nn.ModuleList(make_layer(c.cell, i, o, batch_first=True) for i, o in zip(sizes, sizes[1:]))
        H = c.hidden_size
        if c.decoder == "direct":
            self.globals = nn.Linear(H, c.horizon * H)                    # a context per horizon step
            local = H + H + c.known_features + 2 + len(self.decoder_lag_columns)
            self.local = nn.Sequential(nn.Linear(local, H), nn.ReLU(),
                                       nn.Linear(H, len(c.quantiles)))
        else:
            self.head = nn.Linear(H, 3 if c.likelihood == "student_t" else 2)

    @property
    def lags(self) -> List[int]:
        return list(self.config.lags or [])

    @property
    def decoder_lag_columns(self) -> List[int]:
        """The columns of a batch's ``lagged`` the direct decoder reads (``decoder_lags``): the lags of
        at least the horizon, whose value at every horizon step lies in the history."""
        if not self.config.decoder_lags:
            return []
        return [j for j, lag in enumerate(self.lags) if lag >= self.config.horizon]

    # --- inputs --------------------------------------------------------------------------------

    def _inputs(self, batch: ForecastBatch, values: Tensor, observed: Tensor, steps: slice) -> Tensor:
        """(B, T, width): the per-step inputs of ``steps`` of the window, with ``values``/``observed``
        (B, T) as the value inputs (the step's own, or the previous one's for autoregression)."""
        B, T = values.shape
        parts = [values.unsqueeze(-1), observed.unsqueeze(-1), batch.lagged[:, steps], batch.known[:, steps],
                 batch.past[:, steps], torch.log(batch.scale.float()).view(B, 1, 1).expand(B, T, 1)]
        if self.embedding is not None:
            parts.append(self._embedded(batch.index).unsqueeze(1).expand(B, T, -1))
        return torch.cat([p.to(values.dtype) for p in parts], dim=-1)

    def _embedded(self, index: Tensor) -> Tensor:
        """(B, E): each series' embedding; the mean embedding for a series never seen (-1)."""
        rows = self.embedding(index.clamp(min=0))
        return torch.where((index >= 0).unsqueeze(1), rows, self.embedding.weight.mean(0).expand_as(rows))

    def _encode(self, x: Tensor, state: Optional[list] = None):
        """The stack over (B, T, width) inputs: top outputs (B, T, H) and each layer's state."""
        states = []
        for k, layer in enumerate(self.layers):
            x, s = layer(x, None if state is None else state[k])
            if k < len(self.layers) - 1:
                x = F.dropout(x, self.config.dropout, self.training)
            states.append(s)
        return x, states

    # --- direct --------------------------------------------------------------------------------

    def _direct(self, batch: ForecastBatch) -> Tensor:
        """(B, H, Q) scaled quantiles of the horizon from the context."""
        L, H = batch.context, self.config.horizon
        steps = slice(0, L)
        x = self._inputs(batch, batch.target[:, :L], batch.observed[:, :L], steps)
        out, _ = self._encode(x)
        last = F.dropout(out[:, -1], self.config.dropout, self.training)           # (B, Hd)
        contexts = torch.relu(self.globals(last)).view(last.shape[0], H, -1)      # (B, H, Hd)
        seasonal = self._last_season(batch)                                        # (B, H, 2)
        parts = [contexts, last.unsqueeze(1).expand_as(contexts), batch.known[:, L:L + H].to(last.dtype),
                 seasonal.to(last.dtype)]
        if self.decoder_lag_columns:
            parts.append(batch.lagged[:, L:L + H, self.decoder_lag_columns].to(last.dtype))   # (B, H, lags >= H)
        local = torch.cat(parts, -1)
        return self.local(local) + seasonal[..., :1]                              # (B, H, Q): around the skip

    def _last_season(self, batch: ForecastBatch) -> Tensor:
        """(B, H, 2): for each horizon step, the value of the same phase in the context's last season
        (the seasonal-naive forecast, a skip connection the decoder corrects) and whether it was
        observed. With a season longer than the context, the context's last value."""
        L, H, m = batch.context, self.config.horizon, self.config.season
        m = m if m <= L else 1
        positions = L - m + torch.arange(H, device=batch.target.device) % m           # (H,)
        return torch.stack([batch.target[:, positions], batch.observed[:, positions]], dim=-1)

    # --- autoregressive ------------------------------------------------------------------------

    def _distribution(self, out: Tensor, scale: Tensor) -> distributions.Distribution:
        """The distribution of each step's scaled value from the top outputs (B, T, Hd)."""
        p = self.head(out)
        kind = self.config.likelihood
        if kind == "gaussian":
            return distributions.Normal(p[..., 0], F.softplus(p[..., 1]) + 1e-4)
        if kind == "student_t":
            return distributions.StudentT(2.0 + F.softplus(p[..., 2]), p[..., 0], F.softplus(p[..., 1]) + 1e-4)
        # negative binomial of the unscaled count: mean = scale * softplus, shape from the second output
        s = scale.view(-1, *([1] * (p.dim() - 2))).to(p.dtype)
        mean = s * F.softplus(p[..., 0]) + 1e-6
        total = 1.0 / (F.softplus(p[..., 1]) / torch.sqrt(s) + 1e-6)
        return distributions.NegativeBinomial(total_count=total, probs=mean / (mean + total))

    def _autoregressive_inputs(self, batch: ForecastBatch, T: int) -> Tensor:
        """Teacher-forced inputs of steps 1..T-1: the previous step's value, this step's features."""
        return self._inputs(batch, batch.target[:, :T - 1], batch.observed[:, :T - 1], slice(1, T))

    def _likelihood_target(self, batch: ForecastBatch, steps: slice) -> Tensor:
        if self.config.likelihood == "negative_binomial":                          # counts, unscaled
            return (batch.target[:, steps] * batch.scale.unsqueeze(1).to(batch.target.dtype)).round().clamp(min=0)
        return batch.target[:, steps]

    def _sample_paths(self, batch: ForecastBatch, samples: int) -> Tensor:
        """(B, S, H) scaled sample paths of the horizon."""
        L, H, B = batch.context, self.config.horizon, batch.target.shape[0]
        x = self._inputs(batch, batch.target[:, :L - 1], batch.observed[:, :L - 1], slice(1, L)) if L > 1 else None
        state = self._encode(x)[1] if x is not None else None
        repeat = lambda t: t.repeat_interleave(samples, dim=0)                   # noqa: E731  (B*S, ...)
        big = ForecastBatch(repeat(batch.target), repeat(batch.observed), repeat(batch.lagged), repeat(batch.known),
                            repeat(batch.past), repeat(batch.index), repeat(batch.loc), repeat(batch.scale), L)
        if state is not None:                                   # a layer's state is (L*D, B, H), or (h, c) of them
            state = [tuple(t.repeat_interleave(samples, dim=1) for t in s) if isinstance(s, tuple)
                     else s.repeat_interleave(samples, dim=1) for s in state]
        previous, seen = big.target[:, L - 1:L], big.observed[:, L - 1:L]            # (B*S, 1)
        drawn = []
        for k in range(H):
            step = slice(L + k, L + k + 1)
            out, state = self._encode(self._inputs(big, previous, seen, step), state)
            value = self._distribution(out[:, -1:], big.scale).sample()             # (B*S, 1)
            if self.config.likelihood == "negative_binomial":
                value = value / big.scale.unsqueeze(1).to(value.dtype)
            drawn.append(value)
            previous, seen = value, torch.ones_like(value)
            self._feed_lags(big, drawn, L + k + 1)
        return torch.cat(drawn, dim=1).view(B, samples, H)

    def _feed_lags(self, big: ForecastBatch, drawn: List[Tensor], position: int) -> None:
        """Put the values drawn so far into the lag inputs of the steps after them (lag k of step t
        is the value of step t - k)."""
        L = big.context
        for j, lag in enumerate(self.lags):
            source = position - lag                                                  # the step it copies
            if L <= source < position and position < big.lagged.shape[1]:
                big.lagged[:, position, j] = drawn[source - L][:, 0].to(big.lagged.dtype)

    # --- the API -------------------------------------------------------------------------------

    def forward(self, batch: ForecastBatch) -> Tensor:
        """The training loss of ``batch`` (one call, as distributed training needs)."""
        return self.loss(batch)

    def loss(self, batch: ForecastBatch, reduction: str = "mean") -> Tensor:
        """Pinball loss of the quantiles (direct) or negative log-likelihood (autoregressive) over
        the observed targets: their mean, or with ``reduction="sum"`` their sum."""
        L, H = batch.context, self.config.horizon
        if self.config.decoder == "direct":
            forecast = self._direct(batch).float()                                   # (B, H, Q)
            target, mask = batch.target[:, L:L + H].unsqueeze(-1), batch.observed[:, L:L + H].unsqueeze(-1)
            q = torch.tensor(self.config.quantiles, device=forecast.device)
            error = target - forecast
            terms = torch.maximum(q * error, (q - 1) * error) * mask                 # (B, H, Q)
            total, count = terms.sum() / len(self.config.quantiles), mask.sum()
        else:
            T = L + H
            out, _ = self._encode(self._autoregressive_inputs(batch, T))
            dist = self._distribution(out.float(), batch.scale)
            mask = batch.observed[:, 1:T]
            terms = -dist.log_prob(self._likelihood_target(batch, slice(1, T))) * mask
            total, count = terms.sum(), mask.sum()
        return total if reduction == "sum" else total / count.clamp(min=1)

    @torch.no_grad()
    def quantiles(self, batch: ForecastBatch, levels: Sequence[float], samples: Optional[int] = None) -> Tensor:
        """(B, H, Q) scaled forecasts at the quantile ``levels``, increasing along Q. The direct
        decoder gives only the levels it was trained for."""
        if self.config.decoder == "direct":
            trained = self.config.quantiles
            missing = [q for q in levels if q not in trained]
            if missing:
                raise ValueError(f"quantiles {missing} were not trained: this model forecasts {trained} "
                                 f"(train with --quantiles, or use the autoregressive decoder)")
            out = self._direct(batch).float().sort(dim=-1).values
            return out[..., [trained.index(q) for q in levels]]
        paths = self._sample_paths(batch, samples or self.config.samples).float()    # (B, S, H)
        q = torch.tensor(list(levels), dtype=paths.dtype, device=paths.device)
        return torch.quantile(paths, q, dim=1).permute(1, 2, 0)                      # (B, H, Q)



class ForecastEnsemble(nn.Module):
    """``len(config.input_sizes)`` ``Forecaster`` s trained together on the same windows, each
    reading its own last ``input_sizes[k]`` context steps; forecasts are the median of theirs.

    Args: members: trained networks to hold (``config.input_sizes``: theirs, in order); default new ones.
    Inputs: ``ForecastBatch`` es with ``max(input_sizes)`` steps of context.
    """

    def __init__(self, config: ForecastModel, members: Optional[Sequence["Forecaster"]] = None):
        super().__init__()
        if members is not None and len(members) != len(config.input_sizes):
            raise ValueError(f"{len(members)} members for {len(config.input_sizes)} input sizes")
        self.config = config
        self.members = nn.ModuleList(members if members is not None else
                                     (Forecaster(config) for _ in config.input_sizes))

    @property
    def context(self) -> int:
        return max(self.config.input_sizes)

    def _views(self, batch: ForecastBatch):
        return [(member, batch.cut(size)) for member, size in zip(self.members, self.config.input_sizes)]

    def forward(self, batch: ForecastBatch) -> Tensor:
        """The mean of the members' training losses (one call, as distributed training needs)."""
        return self.loss(batch)

    def loss(self, batch: ForecastBatch, reduction: str = "mean") -> Tensor:
        return torch.stack([member.loss(view, reduction) for member, view in self._views(batch)]).mean()

    @torch.no_grad()
    def quantiles(self, batch: ForecastBatch, levels: Sequence[float], samples: Optional[int] = None) -> Tensor:
        """(B, H, Q): the median over members of their quantile forecasts, increasing along Q."""
        each = torch.stack([member.quantiles(view, levels, samples) for member, view in self._views(batch)])
        if len(each) == 1:
            return each[0]
        # the median by sorting (ONNX has no median); an even count: the mean of the middle two
        ordered = each.sort(dim=0).values
        middle = (ordered[(len(each) - 1) // 2] + ordered[len(each) // 2]) / 2
        return middle.sort(dim=-1).values

    def config_dict(self) -> dict:
        return asdict(self.config)
