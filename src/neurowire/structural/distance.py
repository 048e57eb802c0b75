"""Distance-dependent formation and weight-dependent elimination (Bamford et al. 2010).

Written only with the public rule API, so it doubles as the reference example of a user rule.
The native CPU engine runs the same rule inside its compiled blocks (``neurowire.native.rules``)
from the same random numbers; ``tests/native/test_engine.py`` checks both agree exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..native.rule_kernel import RuleKernel
from ..store import rank_in_row
from .base import RuleContext, StructuralRule
from .view import SynapseView


def candidate_pairs(
    u_row: Tensor, u_post: Tensor, n_pre: int, n_post: int
) -> tuple[Tensor, Tensor]:
    """Distinct (pre, post) candidates from uniform numbers in [0, 1), one per attempt.

    Each attempt goes to row ``floor(u_row * n_pre)``; an attempt that finds its row already
    holding ``n_post`` attempts moves to the next row with room (rare; GeNN's host likewise caps
    a row at ``n_post``). The ``m`` attempts of a row take ``m`` distinct targets, a uniformly
    random ``m``-subset drawn by Floyd's algorithm: the attempt of rank ``r`` draws
    ``t = floor(u_post * (j + 1))`` with ``j = n_post - m + r`` and takes ``j`` instead if ``t``
    is already taken. Cost grows with the attempts, not with ``n_post``. Attempts beyond
    ``n_pre * n_post`` are dropped.

    Returns (pre, post), int64 ``[min(attempts, n_pre * n_post)]``.
    """
    keep = min(u_row.numel(), n_pre * n_post)
    u_row, u_post = u_row[:keep], u_post[:keep]
    pre = (u_row * n_pre).long().clamp_(max=n_pre - 1)
    over = rank_in_row(pre) >= n_post
    if bool(over.any()):
        count = torch.bincount(pre[~over], minlength=n_pre).tolist()
        moved = pre.tolist()
        for a in over.nonzero().squeeze(1).tolist():
            row = moved[a]
            while count[row] >= n_post:
                row = (row + 1) % n_pre
            moved[a] = row
            count[row] += 1
        pre = torch.tensor(moved, dtype=torch.int64, device=pre.device)
    rank = rank_in_row(pre)
    count = torch.bincount(pre, minlength=n_pre)[pre]
    j = n_post - count + rank
    draw = torch.minimum((u_post * (j + 1).to(u_post.dtype)).long(), j)
    post = torch.full_like(pre, -1)
    same_row = pre[:, None] == pre[None, :]
    for r in range(int(rank.max()) + 1 if rank.numel() else 0):
        now = rank == r
        taken = (same_row[now] & (post[None, :] == draw[now][:, None])).any(1)
        post[now] = torch.where(taken, j[now], draw[now])
    return pre, post


class DistanceRewiring(StructuralRule):
    """Eliminate weak synapses, form new ones with a Gaussian distance profile.

    Every call draws ``attempts`` distinct candidate (pre, post) pairs (:func:`candidate_pairs`;
    rows uniform, targets distinct within a row, as GeNN's host/row split in Knight, Senk &
    Nowotny 2025). A candidate that is connected is eliminated with
    probability ``p_elim_dep`` if its weight is below ``w_threshold``, else ``p_elim_pot``; one
    that is not is formed with probability ``p_peak * exp(-d^2 / (2 sigma^2))`` (``d`` the
    periodic grid distance [grid units]) at weight ``w_init``, unless its row is full (counted as
    a failure). Eliminations happen before formations; new synapses are appended in attempt order.

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
        if not (sigma > 0 and math.isfinite(sigma)):
            raise ValueError(f"DistanceRewiring sigma must be > 0, got {sigma}")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise ValueError(f"DistanceRewiring attempts must be an int >= 0, got {attempts!r}")
        for name, value in (("w_threshold", w_threshold), ("w_init", w_init)):
            if not math.isfinite(value):
                raise ValueError(f"DistanceRewiring {name} must be finite, got {value}")
        self.p_peak, self.sigma = float(p_peak), float(sigma)
        self.p_elim_dep, self.p_elim_pot = float(p_elim_dep), float(p_elim_pot)
        self.w_threshold, self.w_init = float(w_threshold), float(w_init)
        self.attempts = attempts

    def native_kernel(self) -> RuleKernel | None:
        """:func:`neurowire.native.rules.distance_rewiring`, tested equal to :meth:`update`;
        None for a subclass that changes :meth:`update` or :meth:`draw`."""
        cls = type(self)
        if cls.update is not DistanceRewiring.update or cls.draw is not DistanceRewiring.draw:
            return None
        return RuleKernel(
            "distance_rewiring",
            self.draw,
            (self.p_peak, 2.0 * self.sigma**2, self.p_elim_dep, self.p_elim_pot),
            (self.w_threshold, self.w_init),
            events_per_call=self.attempts,
            scratch_rows=2,
        )

    def draw(self, rng: np.random.Generator, calls: int = 1) -> np.ndarray:
        """Random numbers of ``calls`` calls: float64 ``[calls, 3, attempts]`` (row, target,
        acceptance), drawn from the rule's numpy generator so that one batched draw equals
        consecutive per-call draws (the native engine draws a whole block at once)."""
        return rng.random((calls, 3, self.attempts))

    def update(self, s: SynapseView, ctx: RuleContext) -> None:
        u = torch.from_numpy(self.draw(ctx.rng)[0]).to(s.store.device)
        pre, post = candidate_pairs(u[0], u[1], s.n_pre, s.n_post)
        accept = u[2][: pre.numel()]
        hit = (s.post[pre] == post[:, None]) & s.live[pre]  # [attempts, capacity]
        connected = hit.any(1)
        slot = hit.to(torch.int8).argmax(1)
        weight = s["weight"][pre, slot]
        p_dep, p_pot = (
            torch.tensor(p, dtype=torch.float64, device=u.device)
            for p in (self.p_elim_dep, self.p_elim_pot)
        )
        p_elim = torch.where(weight < self.w_threshold, p_dep, p_pot)
        eliminate = connected & (accept < p_elim)
        if bool(eliminate.any()):
            mask = torch.zeros_like(s.live)
            mask[pre[eliminate], slot[eliminate]] = True
            s.remove(mask)
        d = s.distance_of(pre, post).double()
        p_form = self.p_peak * torch.exp(-(d * d) / (2.0 * self.sigma**2))
        form = ~connected & (accept < p_form)
        if bool(form.any()):
            s.add(pre[form], post[form], on_full="skip", weight=self.w_init)
