"""Adam whose moments live next to the parameters they belong to.

For a sparse projection the first and second moments are variables ``"adam_m"`` and ``"adam_v"``
of its :class:`~neurowire.RaggedSynapses`, so every structural change moves them with their
synapse and a new synapse starts with zero moments (DESIGN.md, "one mutable sparse store").
Dense parameters (``Dense()`` weights, the readout bias) keep their moments in
:attr:`Adam.state` under the parameter's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..checks import ParameterError, check_number
from ..store import RaggedSynapses

#: names of the moment variables registered in each sparse store
MOMENT_VARS = ("adam_m", "adam_v")


class Adam:
    """Adam (Kingma & Ba 2015) with bias correction by a global step counter.

    One :meth:`step` per batch; gradients are ``dE/dparam`` and the step descends. The arithmetic
    follows ``torch.optim.Adam`` (no weight decay, no AMSGrad) operation for operation::

        m <- m + (1 - beta1) (g - m);   v <- beta2 v + (1 - beta2) g^2
        w <- w - lr / (1 - beta1^k) * m / (sqrt(v) / sqrt(1 - beta2^k) + eps)

    Args:
        lr: learning rate, a finite number > 0.
        betas: ``(beta1, beta2)`` moment decay rates, each in [0, 1).
        eps: added to the denominator, a finite number > 0 (with 0, a weight whose gradients
            were all 0 would get ``0 / 0``).
    """

    def __init__(
        self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        lr = check_number("Adam lr", lr, low=0.0, low_open=True)
        try:
            pair = tuple(betas)
        except TypeError:
            pair = ()
        if len(pair) != 2:
            raise ParameterError(f"Adam betas must be two numbers in [0, 1), got {betas!r}")
        beta1 = check_number("Adam betas[0]", pair[0], low=0.0, high=1.0, high_open=True)
        beta2 = check_number("Adam betas[1]", pair[1], low=0.0, high=1.0, high_open=True)
        eps = check_number("Adam eps", eps, low=0.0, low_open=True)
        self.lr = lr
        self.betas = (beta1, beta2)
        self.eps = eps
        self.step_count = 0
        self.state: dict[str, dict[str, Tensor]] = {}

    def __repr__(self) -> str:
        return f"Adam(lr={self.lr}, betas={self.betas}, eps={self.eps}, step={self.step_count})"

    # ------------------------------------------------------------------ registration
    def attach(self, name: str, param: RaggedSynapses | Tensor, var: str = "weight") -> None:
        """Create zero moments for ``param`` (a store's ``var`` or a dense tensor) if missing."""
        if isinstance(param, RaggedSynapses):
            dtype = param.vars[var].dtype
            for key in MOMENT_VARS:
                if key not in param.vars:
                    param.add_var(key, dtype=dtype)
        elif isinstance(param, Tensor):
            st = self.state.get(name)
            if st is None or st["m"].shape != param.shape:
                self.state[name] = {"m": torch.zeros_like(param), "v": torch.zeros_like(param)}
        else:
            raise TypeError(
                f"Adam parameter {name!r} must be a RaggedSynapses or a Tensor, got "
                f"{type(param).__name__}"
            )

    # ------------------------------------------------------------------ update
    def step(self, updates: Mapping[str, tuple[RaggedSynapses | Tensor, Tensor]]) -> None:
        """Advance the step counter once and update every parameter in place.

        Args:
            updates: ``{name: (param, grad)}``. For a store, ``grad`` is ``[n_pre, capacity]``
                in slot layout (zero on padding) and updates its ``"weight"``; for a tensor,
                ``grad`` has the tensor's shape.
        """
        self.step_count += 1
        beta1, beta2 = self.betas
        k = self.step_count
        step_size = self.lr / (1 - beta1**k)
        bc2_sqrt = (1 - beta2**k) ** 0.5
        for name, (param, grad) in updates.items():
            self.attach(name, param)
            if isinstance(param, RaggedSynapses):
                w = param.vars["weight"]
                m, v = (param.vars[key] for key in MOMENT_VARS)
            else:
                w, m, v = param, self.state[name]["m"], self.state[name]["v"]
            if grad.shape != w.shape:
                raise ValueError(
                    f"Adam parameter {name!r}: gradient shape {tuple(grad.shape)} does not "
                    f"match the parameter's {tuple(w.shape)}"
                )
            grad = grad.to(w.dtype)
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
            w.addcdiv_(m, denom, value=-step_size)
            if isinstance(param, RaggedSynapses):
                param.values_changed()  # written in place: the store's value caches refresh

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Step counter, hyperparameters and the dense moments (store moments live in stores)."""
        return {
            "lr": self.lr,
            "betas": self.betas,
            "eps": self.eps,
            "step_count": self.step_count,
            "state": {k: {n: t.clone() for n, t in st.items()} for k, st in self.state.items()},
        }

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        self.lr, self.betas, self.eps = float(d["lr"]), tuple(d["betas"]), float(d["eps"])
        self.step_count = int(d["step_count"])
        self.state = {k: {n: t.clone() for n, t in st.items()} for k, st in d["state"].items()}
