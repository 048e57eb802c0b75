"""Distance-dependent formation and weight-dependent elimination (Bamford et al. 2010).

Written only with the public rule API, so it doubles as the reference example of a user rule.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import RuleContext, StructuralRule
from .view import SynapseView


def distinct_pairs(
    n_pre: int, n_post: int, attempts: int, generator: torch.Generator, device: torch.device
) -> tuple[Tensor, Tensor]:
    """``attempts`` distinct (pre, post) pairs: rows uniform, targets distinct within a row.

    Each attempt goes to a uniformly drawn row; each row then takes that many distinct targets
    uniformly (GeNN's host/row split, reference/paper-experiments.md §3.4). Cost grows with
    ``attempts``, not with ``n_post``. Attempts beyond ``n_pre * n_post`` are dropped.
    """
    attempts = min(attempts, n_pre * n_post)
    pre = torch.randint(0, n_pre, (attempts,), generator=generator, device=device)
    post = torch.randint(0, n_post, (attempts,), generator=generator, device=device)
    for _ in range(64):
        key = pre * n_post + post
        order = torch.argsort(key, stable=True)
        repeated_sorted = torch.zeros_like(key, dtype=torch.bool)
        repeated_sorted[1:] = key[order][1:] == key[order][:-1]
        repeated = torch.zeros_like(repeated_sorted)
        repeated[order] = repeated_sorted
        if not bool(repeated.any()):
            return pre, post
        post = torch.where(
            repeated, torch.randint(0, n_post, post.shape, generator=generator, device=device), post
        )
        # a row asked for more targets than it has columns: move the attempt to another row
        full = repeated & (torch.bincount(pre, minlength=n_pre)[pre] > n_post)
        pre = torch.where(
            full, torch.randint(0, n_pre, pre.shape, generator=generator, device=device), pre
        )
    raise RuntimeError("could not draw distinct rewiring candidates")


class DistanceRewiring(StructuralRule):
    """Eliminate weak synapses, form new ones with a Gaussian distance profile.

    Every call draws ``attempts`` distinct candidate (pre, post) pairs (:func:`distinct_pairs`).
    A candidate that is connected is eliminated with probability ``p_elim_dep`` if its weight is
    below ``w_threshold``, else ``p_elim_pot``; one that is not is formed with probability
    ``p_peak * exp(-d^2 / (2 sigma^2))`` (``d`` the periodic grid distance [grid units]) at weight
    ``w_init``, unless its row is full (counted as a failure).

    Args:
        p_peak, sigma: formation profile (as the initial ``GaussianDistance``).
        p_elim_dep: elimination probability of a weak synapse (values > 1 act as 1).
        p_elim_pot: elimination probability of a strong synapse.
        w_threshold: weak/strong boundary (weight units).
        w_init: weight of a new synapse.
        attempts: candidates per call.
    """

    def __init__(
        self,
        p_peak: float,
        sigma: float,
        p_elim_dep: float,
        p_elim_pot: float,
        w_threshold: float,
        w_init: float,
        attempts: int = 10,
    ) -> None:
        for name, value in (
            ("p_peak", p_peak),
            ("p_elim_dep", p_elim_dep),
            ("p_elim_pot", p_elim_pot),
        ):
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"DistanceRewiring {name} must be >= 0, got {value}")
        if not sigma > 0:
            raise ValueError(f"DistanceRewiring sigma must be > 0, got {sigma}")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise ValueError(f"DistanceRewiring attempts must be an int >= 0, got {attempts!r}")
        self.p_peak, self.sigma = float(p_peak), float(sigma)
        self.p_elim_dep, self.p_elim_pot = float(p_elim_dep), float(p_elim_pot)
        self.w_threshold, self.w_init = float(w_threshold), float(w_init)
        self.attempts = attempts

    def update(self, s: SynapseView, ctx: RuleContext) -> None:
        gen, dev = ctx.generator, s.store.device
        pre, post = distinct_pairs(s.n_pre, s.n_post, self.attempts, gen, dev)
        hit = (s.post[pre] == post[:, None]) & s.live[pre]  # [attempts, capacity]
        connected = hit.any(1)
        slot = hit.float().argmax(1)
        weight = s["weight"][pre, slot]
        p_elim = torch.where(weight < self.w_threshold, self.p_elim_dep, self.p_elim_pot)
        u = torch.rand(pre.shape, generator=gen, device=dev)
        eliminate = connected & (u < p_elim)
        mask = torch.zeros_like(s.live)
        mask[pre[eliminate], slot[eliminate]] = True
        s.remove(mask)

        d = s.distance_of(pre, post)
        p_form = self.p_peak * torch.exp(-(d * d) / (2.0 * self.sigma**2))
        form = ~connected & (u < p_form)
        if bool(form.any()):
            s.add(pre[form], post[form], on_full="skip", weight=self.w_init)
