"""Rewiring with a maximum fan-in shared by two projections (Bamford et al. 2010).

The native CPU engine runs the same rule inside its compiled blocks (``neurowire.native.rules``)
from the same random numbers; ``tests/native/test_engine.py`` checks both agree exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..native.rule_kernel import RuleKernel
from .base import RuleContext, StructuralRule
from .view import SynapseView


class SharedFanInRewiring(StructuralRule):
    """Bamford et al. (2010) rewiring: every target neuron has ``max_fan_in`` synapse slots,
    shared by this projection and a ``partner`` projection onto the same population.

    Each attempt (as in Bamford et al. 2010) picks a target ``j`` and one of its slots
    uniformly. If the slot is occupied (the target's afferents fill slots ``0 .. fan_in - 1``,
    this projection's first, then the partner's, each in row-major order), that synapse is
    eliminated with probability ``p_elim_dep`` if its weight is below ``w_threshold``, else
    ``p_elim_pot``. If it is empty, a presynaptic candidate is drawn uniformly from both
    projections' presynaptic populations and connected with probability
    ``p_peak * exp(-d^2 / (2 sigma^2))`` (that projection's profile) at weight ``w_init``.
    Unlike the original, a candidate that is already connected is not duplicated (no
    multapses). Attempts within one call run in sequence, each seeing the previous ones.

    Args:
        partner: name of the other projection onto the same postsynaptic population.
        max_fan_in: synapse slots per target neuron.
        p_peak, sigma: formation profiles ``(this, partner)``.
        p_elim_dep, p_elim_pot: elimination probabilities below / above ``w_threshold``.
        w_threshold, w_init: weak/strong boundary and weight of a new synapse.
        attempts: attempts per call.
    """

    def __init__(
        self,
        partner: str,
        max_fan_in: int = 32,
        p_peak: Sequence[float] = (0.16, 1.0),
        sigma: Sequence[float] = (2.5, 1.0),
        p_elim_dep: float = 0.0245,
        p_elim_pot: float = 1.36e-4,
        w_threshold: float = 0.1,
        w_init: float = 0.2,
        attempts: int = 1,
    ) -> None:
        if len(p_peak) != 2 or len(sigma) != 2:
            raise ValueError("p_peak and sigma need two values: (this projection, partner)")
        if any(not (0 <= p <= 1) for p in p_peak) or any(not s > 0 for s in sigma):
            raise ValueError(f"need 0 <= p_peak <= 1 and sigma > 0, got {p_peak}, {sigma}")
        if isinstance(max_fan_in, bool) or not isinstance(max_fan_in, int) or max_fan_in < 1:
            raise ValueError(f"max_fan_in must be an int >= 1, got {max_fan_in!r}")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise ValueError(f"attempts must be an int >= 0, got {attempts!r}")
        for name, value in (("p_elim_dep", p_elim_dep), ("p_elim_pot", p_elim_pot)):
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.partner = partner
        self.max_fan_in = max_fan_in
        self.p_peak = tuple(float(p) for p in p_peak)
        self.sigma = tuple(float(s) for s in sigma)
        self.p_elim_dep, self.p_elim_pot = float(p_elim_dep), float(p_elim_pot)
        self.w_threshold, self.w_init = float(w_threshold), float(w_init)
        self.attempts = attempts

    def setup(self, s: SynapseView, ctx: RuleContext) -> None:
        other = ctx.view(self.partner)
        if other.n_post != s.n_post:
            raise ValueError(
                f"{s.store.name}: partner {self.partner!r} projects onto "
                f"{other.n_post} neurons, this one onto {s.n_post}"
            )

    def native_kernel(self) -> RuleKernel | None:
        """:func:`neurowire.native.rules.shared_fan_in_rewiring`, tested equal to
        :meth:`update`; None for a subclass that changes :meth:`update` or :meth:`draw`."""
        cls = type(self)
        if cls.update is not SharedFanInRewiring.update or cls.draw is not SharedFanInRewiring.draw:
            return None
        two_sigma_sq = tuple(2.0 * s**2 for s in self.sigma)
        return RuleKernel(
            "shared_fan_in_rewiring",
            self.draw,
            (self.max_fan_in, *self.p_peak, *two_sigma_sq)
            + (self.p_elim_dep, self.p_elim_pot, self.w_threshold),
            (self.w_init,),
            events_per_call=self.attempts,
            partner=self.partner,
            slot_columns=True,
        )

    def draw(self, rng: np.random.Generator, calls: int = 1) -> np.ndarray:
        """Random numbers of ``calls`` calls: float64 ``[calls, attempts, 4]`` (target, slot,
        candidate, acceptance), from the rule's numpy generator so that one batched draw
        equals consecutive per-call draws (the native engine draws a whole block at once)."""
        return rng.random((calls, self.attempts, 4))

    def update(self, s: SynapseView, ctx: RuleContext) -> None:
        views = (s, ctx.view(self.partner))
        for j_u, slot_u, cand_u, accept in self.draw(ctx.rng)[0].tolist():
            j = min(int(j_u * s.n_post), s.n_post - 1)
            slot = min(int(slot_u * self.max_fan_in), self.max_fan_in - 1)
            afferents = [((v.post == j) & v.live).nonzero() for v in views]  # (row, slot)
            counts = [a.shape[0] for a in afferents]
            if slot < sum(counts):
                k = 0 if slot < counts[0] else 1
                row, col = afferents[k][slot - (0 if k == 0 else counts[0])].tolist()
                weight = float(views[k]["weight"][row, col])
                p = self.p_elim_dep if weight < self.w_threshold else self.p_elim_pot
                if accept < p:
                    mask = torch.zeros_like(views[k].live)
                    mask[row, col] = True
                    views[k].remove(mask)
                continue
            n_pre = (views[0].n_pre, views[1].n_pre)
            c = min(int(cand_u * (n_pre[0] + n_pre[1])), n_pre[0] + n_pre[1] - 1)
            k = 0 if c < n_pre[0] else 1
            pre = c if k == 0 else c - n_pre[0]
            dev = views[k].store.device
            pair = torch.tensor([pre], device=dev), torch.tensor([j], device=dev)
            if bool(views[k].contains(*pair)):
                continue
            d = float(views[k].distance_of(*pair))
            p = self.p_peak[k] * math.exp(-d * d / (2.0 * self.sigma[k] ** 2))
            if accept < p:
                views[k].add(*pair, on_full="skip", weight=self.w_init)
