"""The last training batch's firing rates, as rules see them (``rate_hz`` of a view)."""

from __future__ import annotations

import torch
from torch import Tensor


class BatchRates:
    """Mean rate [Hz] of every input and hidden neuron over one batch, made from its spike
    counts only when a rule first reads a population's (most rules never do).

    Args:
        input_name: name of the input population.
        input_counts: int ``[n_in]`` input spikes of the batch.
        hidden_counts: ``[n_hidden]`` hidden spikes of the batch.
        spans: ``{population: (start, stop)}`` of each hidden population in ``hidden_counts``.
        per_s: 1 / (trials x duration [s]): turns a count into a mean rate [Hz].
        dtype: dtype of the rates.
    """

    def __init__(
        self,
        input_name: str,
        input_counts: Tensor | None,
        hidden_counts: Tensor | None,
        spans: dict[str, tuple[int, int]],
        per_s: float,
        dtype: torch.dtype,
    ) -> None:
        self._sources = (input_name, input_counts, hidden_counts, spans, per_s, dtype)
        self._rates: dict[str, Tensor] | None = None

    @classmethod
    def none(cls) -> BatchRates:
        """Before the first batch: no population has a rate."""
        out = cls("", None, None, {}, 0.0, torch.float32)
        out._rates = {}
        return out

    def of(self, population: str) -> Tensor | None:
        """``[n]`` rates [Hz] of ``population``, or None if the batch had none for it."""
        return self.to_dict().get(population)

    def to_dict(self) -> dict[str, Tensor]:
        """``{population: [n] rates [Hz]}`` of every population of the batch."""
        if self._rates is None:
            name, counts, hidden, spans, per_s, dtype = self._sources
            rates = {name: counts.to(dtype) * per_s}
            hidden_hz = hidden.to(dtype) * per_s
            for pop, (start, stop) in spans.items():
                rates[pop] = hidden_hz[start:stop]
            self._rates = rates
        return self._rates
