"""Built-in synthetic spike tasks: generated from a seed, no download.

:func:`frozen_poisson_patterns` is a temporal classification task: every class owns one frozen
Poisson spike pattern, and each sample is its class pattern with spikes dropped, jittered in
time and mixed with background noise. With ``same_counts=True`` (the default) every class pattern
has the *same* number of spikes on every channel (each channel of a class is the shared base
pattern shifted circularly in time by its own offset), so spike counts per channel carry no
information and only timing distinguishes the classes.
"""

from __future__ import annotations

import torch

from .batching import SpikeDataset


def frozen_poisson_patterns(
    n_classes: int = 2,
    n_inputs: int = 40,
    steps: int = 100,
    rate_hz: float = 20.0,
    n_train: int = 256,
    n_test: int = 128,
    p_drop: float = 0.1,
    jitter: int = 1,
    noise_hz: float = 2.0,
    same_counts: bool = True,
    dt: float = 1.0,
    seed: int = 0,
) -> tuple[SpikeDataset, SpikeDataset]:
    """Train and test sets of noisy copies of frozen per-class Poisson patterns.

    Args:
        n_classes: classes (one pattern each); labels ``0 .. n_classes-1``, balanced.
        n_inputs: input channels.
        steps: time steps per sample.
        rate_hz: rate of the frozen patterns [Hz].
        n_train, n_test: samples per set.
        p_drop: probability that a pattern spike is deleted in a sample.
        jitter: each kept spike moves by a uniform whole number of steps in ``[-jitter, jitter]``.
        noise_hz: rate of added background spikes [Hz].
        same_counts: classes share per-channel spike counts (timing-only task).
        dt: step [ms].
        seed: everything is a function of it.

    Returns:
        ``(train, test)`` :class:`SpikeDataset` with ``spikes [n, steps, n_inputs]`` bool and
        int64 labels ``[n]``.
    """
    for name, val in (("n_classes", n_classes), ("n_inputs", n_inputs), ("steps", steps)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be an int >= 1, got {val!r}")
    if not 0.0 <= p_drop < 1.0:
        raise ValueError(f"p_drop must lie in [0, 1), got {p_drop}")
    if jitter < 0 or rate_hz < 0 or noise_hz < 0:
        raise ValueError("jitter, rate_hz and noise_hz must be >= 0")
    gen = torch.Generator().manual_seed(int(seed))
    p_spike = rate_hz * dt / 1000.0
    if same_counts:
        base = torch.rand(steps, n_inputs, generator=gen) < p_spike
        shifts = torch.randint(0, steps, (n_classes, n_inputs), generator=gen)
        t = torch.arange(steps)[:, None]
        templates = torch.stack(
            [base.gather(0, (t - shifts[c][None, :]) % steps) for c in range(n_classes)]
        )
    else:
        templates = torch.rand(n_classes, steps, n_inputs, generator=gen) < p_spike

    def make(n: int) -> SpikeDataset:
        labels = torch.arange(n) % n_classes
        labels = labels[torch.randperm(n, generator=gen)]
        spikes = torch.zeros(n, steps, n_inputs, dtype=torch.bool)
        sample, time, chan = templates[labels].nonzero(as_tuple=True)
        keep = torch.rand(sample.numel(), generator=gen) >= p_drop
        sample, time, chan = sample[keep], time[keep], chan[keep]
        if jitter:
            shift = torch.randint(-jitter, jitter + 1, (time.numel(),), generator=gen)
            time = (time + shift).clamp(0, steps - 1)
        spikes[sample, time, chan] = True
        spikes |= torch.rand(n, steps, n_inputs, generator=gen) < noise_hz * dt / 1000.0
        return SpikeDataset(spikes, labels)

    return make(n_train), make(n_test)
