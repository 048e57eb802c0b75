"""Forward passes of an e-prop trainer without learning: a batch's metrics, predictions,
readout summaries, hidden spikes and the readout trace, and the check of input spikes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import distributed as _dist
from . import gradient_pass as _pass
from .losses import Loss, readout_value
from .tables import gather_weights

__all__ = ["Inference", "batch_metrics"]


class Inference:
    """The forward-only methods of :class:`~neurowire.EProp` (they change nothing).

    Uses the trainer's compiled ``network``, ``device``, engine object (``_engine``),
    ``loss``, ``readout``, ``feedback_matrix``, ``rank`` and ``world_size``, and the input
    checks, thread scope and chunking of :mod:`.gradient_pass`.
    """

    def _check_spikes(self, spikes: Any) -> Tensor:
        """Validate ``spikes [B, T, n_in]``; return them as a contiguous bool tensor."""
        if isinstance(spikes, np.ndarray):
            spikes = torch.from_numpy(spikes)
        if not isinstance(spikes, Tensor):
            raise TypeError(f"spikes must be a tensor [B, T, n_in], got {type(spikes).__name__}")
        n_in = self.network.n_in
        if spikes.dim() != 3:
            raise ValueError(
                f"spikes must have shape [B, T, n_in] (3-D), got {tuple(spikes.shape)}"
            )
        if spikes.shape[2] != n_in:
            raise ValueError(
                f"spikes have {spikes.shape[2]} channels but input population "
                f"{self.network.input.name!r} has {n_in} neurons"
            )
        if spikes.shape[0] < 1 or spikes.shape[1] < 1:
            raise ValueError(f"spikes need B >= 1 trials and T >= 1 steps, got {spikes.shape}")
        if spikes.is_complex():
            raise TypeError(f"spikes must be bool or 0/1 numbers, got dtype {spikes.dtype}")
        if spikes.dtype != torch.bool:
            if spikes.is_floating_point() and bool(torch.isnan(spikes).any()):
                raise ValueError("spikes contain NaN")
            if bool(((spikes != 0) & (spikes != 1)).any()):
                raise ValueError("spikes must be bool or 0/1 numbers; got other values")
            spikes = spikes != 0
        return spikes.to(self.device).contiguous()

    def predict(self, spikes: Tensor) -> Tensor:
        """Class index ``[B]`` per trial: argmax of the readout summary (``readout=``)."""
        return self.scores(spikes).argmax(-1)

    def scores(self, spikes: Tensor) -> Tensor:
        """Readout summary ``[B, n_out]`` (sum, avg, max or last of ``y`` over time)."""
        with _pass.thread_scope(self, spikes):
            x = self._check_spikes(spikes)
            return torch.cat([readout_value(y, self.readout) for y, _ in self._forward(x)])

    def hidden_spikes(self, spikes: Tensor) -> Tensor:
        """The trainer's forward pass: hidden spikes ``[B, T, N]`` (bool, hidden populations
        concatenated in declaration order) for input spikes ``[B, T, n_in]``."""
        with _pass.thread_scope(self, spikes):
            x = self._check_spikes(spikes)
            n = self.network
            w = gather_weights(n, self.feedback_matrix)
            z_ev = self._engine.hidden_pass(n, w, x).z_events
            z = torch.zeros(z_ev.n_rows, z_ev.n, dtype=torch.bool, device=z_ev.pre.device)
            z[z_ev.row, z_ev.pre] = True
            return z.view(x.shape[1], x.shape[0], z_ev.n).transpose(0, 1)

    def readout_trace(self, spikes: Tensor) -> Tensor:
        """The trainer's readout ``y [B, T, n_out]`` for input spikes ``[B, T, n_in]``."""
        with _pass.thread_scope(self, spikes):
            x = self._check_spikes(spikes)
            return torch.cat([y for y, _ in self._forward(x)], dim=1).transpose(0, 1)

    @staticmethod
    def simulator_inputs(spikes: Tensor) -> Tensor:
        """Inputs that make a :class:`~neurowire.Simulator` reproduce the trainer's timing.

        The trainer feeds input spikes of step ``t`` into the hidden layer in step ``t``; the
        Simulator delivers every spike one step later. Given these inputs (the same spikes and
        one empty step at the end, ``[B, T + 1, n_in]``) and run for ``T + 1`` steps, the
        Simulator's hidden spikes at step ``t + 1`` equal :meth:`hidden_spikes` at step ``t``
        (step 0 of the Simulator is silent). Its readout lags one step more and its bias
        enters from step 0: ``y_sim[t + 2] = y[t] + b (kappa^(t+1) + kappa^(t+2))`` with
        ``y`` from :meth:`readout_trace` and ``kappa`` the readout's decay.
        """
        spikes = torch.as_tensor(spikes)
        if spikes.dim() != 3:
            raise ValueError(f"spikes must be [B, T, n_in], got shape {tuple(spikes.shape)}")
        pad = torch.zeros_like(spikes[:, :1])
        return torch.cat([spikes, pad], dim=1)

    def _forward(self, x: Tensor):
        n = self.network
        w = gather_weights(n, self.feedback_matrix)
        batch, steps, _ = x.shape
        for sl in _pass.chunks(batch, _pass.chunk_size(self, steps)):
            z_ev = self._engine.hidden_pass(n, w, x[sl]).z_events
            yield self._engine.readout(z_ev, w, n.kappa, steps, n.step_threads), z_ev.count

    def evaluate_step(self, spikes: Tensor, labels: Tensor) -> dict[str, float]:
        """One batch's metrics (as :meth:`train_step`'s) without changing anything.

        Distributed: every rank passes the same batch and simulates its shard (a rank with no
        trial of a small batch adds nothing); every rank returns the whole batch's metrics.
        """
        with _pass.thread_scope(self, spikes):
            x, tgt = _pass.prepare(self, spikes, labels)
            batch, steps, _ = x.shape
            own = _dist.shard(batch, self.rank, self.world_size, allow_empty=True)
            offset = own.start
            loss_sum, spk = 0.0, 0.0
            empty = torch.zeros(0, self.network.n_out, dtype=self.network.dtype)
            scores = [empty.to(self.device)]
            for y, s in self._forward(x[own]):
                sl = slice(offset, offset + y.shape[1])
                offset += y.shape[1]
                loss_sum += float(self.loss.value(y, self.loss.select(tgt, sl)))
                spk += float(s)
                scores.append(readout_value(y, self.readout))
            score = torch.cat(scores)
            if self.world_size > 1:
                sums = torch.tensor([loss_sum, spk], dtype=torch.float64, device=self.device)
                sums, score = _dist.sum_identical([sums, _dist.spread_rows(score, own, batch)])
                loss_sum, spk = float(sums[0]), float(sums[1])
        return batch_metrics(self.loss, loss_sum, score, torch.tensor(spk), batch, steps, tgt)


def batch_metrics(
    loss: Loss,
    loss_sum: float,
    scores: Tensor,
    spikes: Tensor,
    trials: int,
    steps: int,
    tgt: Tensor,
) -> dict[str, float]:
    """One batch's metrics: ``loss`` (``E / (B T)``), ``spikes`` (hidden spikes in total),
    ``trials``, ``steps`` and, for classification, ``correct`` and ``accuracy`` (the argmax of
    the readout summaries ``scores [B, n_out]`` against the labels ``tgt [B]``)."""
    m = {
        "loss": loss_sum / (trials * steps),
        "spikes": float(spikes.sum()),
        "trials": trials,
        "steps": steps,
    }
    if loss.classification:
        m["correct"] = int((scores.argmax(-1) == tgt).sum())
        m["accuracy"] = m["correct"] / trials
    return m
