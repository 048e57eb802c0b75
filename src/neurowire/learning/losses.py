"""Losses, prediction readouts and the firing-rate regulariser of e-prop.

Equations: Bellec et al. 2020 (readout and loss, batch-form regulariser).
All tensors here are *time-major*: readout values ``y [T, B, n_out]``.

The error ``err_t = dE/dy_t`` that drives e-prop is, per step and trial,

* ``"sce"`` (sparse categorical cross-entropy, labels int ``[B]``):
  ``E = -sum_{b,t} log softmax(y_t)[label]``, ``err_t = softmax(y_t) - onehot(label)``;
* ``"mse"`` (regression, targets float ``[B, T, n_out]``):
  ``E = 1/2 sum_{b,t,k} (y_t - target_t)^2``, ``err_t = y_t - target_t``.

Reported loss values are ``E / (B * T)``, the mean per trial and step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..checks import check_number, check_rate

LOSSES = ("sce", "mse")
READOUTS = ("sum", "avg", "max", "last")


class Loss:
    """Base class: checks targets, gives the per-step error ``dE/dy`` and the value of ``E``."""

    name = "loss"
    #: labels are class indices and accuracy is defined
    classification = False

    def prepare(self, targets, batch: int, steps: int, n_out: int, device, dtype) -> Tensor:
        """Validate ``targets`` for a batch; return them on ``device`` (time-major if per step)."""
        raise NotImplementedError

    def error(self, y: Tensor, targets: Tensor) -> Tensor:
        """``err [T, B, n_out] = dE/dy`` for readout ``y [T, B, n_out]``."""
        raise NotImplementedError

    def value(self, y: Tensor, targets: Tensor) -> Tensor:
        """``E`` summed over trials and steps (a 0-d tensor)."""
        raise NotImplementedError

    def at_step(self, targets: Tensor, t: int) -> Tensor:
        """The targets of step ``t`` alone, for ``y [1, B, n_out]``."""
        return targets[t : t + 1]

    def select(self, targets: Tensor, trials: slice) -> Tensor:
        """The targets of a chunk of trials."""
        return targets[:, trials]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SparseCategoricalCrossEntropy(Loss):
    """Softmax cross-entropy against one integer label per trial, summed over every step."""

    name = "sce"
    classification = True

    def prepare(self, targets, batch, steps, n_out, device, dtype) -> Tensor:
        labels = torch.as_tensor(targets)
        if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
            raise TypeError(
                f"loss 'sce' needs integer class labels [B], got dtype {labels.dtype}; "
                "use loss='mse' for real-valued targets"
            )
        if labels.shape != (batch,):
            raise ValueError(
                f"loss 'sce' needs labels of shape ({batch},) (one per trial), got "
                f"{tuple(labels.shape)}"
            )
        if batch and (bool((labels < 0).any()) or bool((labels >= n_out).any())):
            bad = labels[(labels < 0) | (labels >= n_out)][0].item()
            raise ValueError(
                f"label {bad} is out of range: the output population has {n_out} neurons, so "
                f"labels must lie in [0, {n_out})"
            )
        return labels.to(device=device, dtype=torch.int64)

    def error(self, y: Tensor, targets: Tensor) -> Tensor:
        err = torch.softmax(y, dim=-1)
        idx = targets.view(1, -1, 1).expand(y.shape[0], -1, 1)
        err.scatter_add_(-1, idx, torch.full_like(idx, -1, dtype=y.dtype))
        return err

    def value(self, y: Tensor, targets: Tensor) -> Tensor:
        logp = torch.log_softmax(y, dim=-1)
        idx = targets.view(1, -1, 1).expand(y.shape[0], -1, 1)
        return -logp.gather(-1, idx).sum()

    def at_step(self, targets: Tensor, t: int) -> Tensor:
        return targets

    def select(self, targets: Tensor, trials: slice) -> Tensor:
        return targets[trials]


class MeanSquaredError(Loss):
    """Half the squared error against a target trace per trial ``[B, T, n_out]``."""

    name = "mse"

    def prepare(self, targets, batch, steps, n_out, device, dtype) -> Tensor:
        tgt = torch.as_tensor(targets)
        if not tgt.is_floating_point():
            raise TypeError(
                f"loss 'mse' needs floating targets [B, T, n_out], got dtype {tgt.dtype}"
            )
        if tgt.shape != (batch, steps, n_out):
            raise ValueError(
                f"loss 'mse' needs targets of shape {(batch, steps, n_out)} "
                f"([B, T, n_out]), got {tuple(tgt.shape)}"
            )
        if not bool(torch.isfinite(tgt).all()):
            raise ValueError("targets contain NaN or infinity")
        return tgt.to(device=device, dtype=dtype).transpose(0, 1).contiguous()

    def error(self, y: Tensor, targets: Tensor) -> Tensor:
        return y - targets

    def value(self, y: Tensor, targets: Tensor) -> Tensor:
        return 0.5 * (y - targets).square().sum()


_LOSSES = {"sce": SparseCategoricalCrossEntropy, "mse": MeanSquaredError}


def get_loss(loss: str | Loss) -> Loss:
    """Resolve ``"sce"``/``"mse"`` or pass a :class:`Loss` through."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in _LOSSES:
        return _LOSSES[loss]()
    if isinstance(loss, str):
        raise ValueError(f"loss must be one of {LOSSES} or a Loss, got {loss!r}")
    raise TypeError(f"loss must be a name {LOSSES} or a Loss, got {type(loss).__name__}")


def check_readout(readout: str) -> str:
    if not isinstance(readout, str):
        raise TypeError(f"readout must be one of {READOUTS}, got {type(readout).__name__}")
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    return readout


def readout_value(y: Tensor, readout: str) -> Tensor:
    """Summarise ``y [T, B, n_out]`` over time into ``[B, n_out]``.

    ``"sum"`` and ``"avg"`` integrate y over the trial, ``"max"`` takes its maximum over time,
    ``"last"`` the value at the last step.
    """
    if readout == "sum":
        return y.sum(0)
    if readout == "avg":
        return y.mean(0)
    if readout == "max":
        return y.max(0).values
    if readout == "last":
        return y[-1]
    raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")


@dataclass(frozen=True)
class RateRegularizer:
    """Batch-form firing-rate regulariser (Bellec et al. 2020).

    ``E_reg = c/2 * sum_j (fbar_j - f_target)^2`` with ``fbar_j`` the mean spikes per step of
    hidden neuron ``j`` over the whole batch and trial, ``f_target = f_target_hz * dt / 1000``.
    Its e-prop gradient adds ``R_j * sum_{b,t} e_ji,t`` with ``R_j = c (fbar_j - f_target)/(B T)``.

    Args:
        c: strength, a finite number >= 0.
        f_target_hz: target rate [Hz], finite and >= 0.
    """

    c: float = 1e-3
    f_target_hz: float = 10.0

    def __post_init__(self) -> None:
        check_number("RateRegularizer c", self.c, low=0.0)
        check_rate("RateRegularizer f_target_hz", self.f_target_hz)

    def factor(self, spike_counts: Tensor, trials: int, steps: int, dt: float) -> Tensor:
        """``R [N]`` from spike counts per hidden neuron summed over ``trials`` and ``steps``."""
        norm = trials * steps
        rate = spike_counts / norm
        return self.c * (rate - self.f_target_hz * dt / 1000.0) / norm
