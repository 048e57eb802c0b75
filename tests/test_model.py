"""``neurowire.model`` holds everything a model needs: a neuron written with only its names
(every function of the model language) runs alike on the torch and native engines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

import neurowire as nw
from neurowire.model import (
    NeuronModel,
    absolute,
    clip,
    decay,
    exp,
    maximum,
    minimum,
    refractory_steps,
    spike,
    where,
)


class BoundedState(NamedTuple):
    v: Tensor  # [B, n]
    r: Tensor  # [B, n] int32
    z: Tensor  # [B, n] bool


@dataclass(frozen=True)
class BoundedLIF(NeuronModel):
    """LIF whose potential is clipped, with an input gain that falls with |v|."""

    tau_m: float = 10.0
    tau_refrac: float = 2.0

    state_type: ClassVar[type] = BoundedState

    def init_state(self, batch, device, dtype, generator=None):
        zeros = torch.zeros(batch, self.n, dtype=dtype, device=device)
        return BoundedState(
            zeros,
            torch.zeros(batch, self.n, dtype=torch.int32, device=device),
            torch.zeros(batch, self.n, dtype=torch.bool, device=device),
        )

    def constants(self, dt):
        return {"alpha": decay(self.tau_m, dt), "n_ref": refractory_steps(self.tau_refrac, dt)}

    def update(self, s, c, i_syn):
        gain = exp(-absolute(s.v))
        s.v = clip(c.alpha * s.v + gain * minimum(i_syn, 2.0) - s.z, -1.0, 3.0)
        s.z = spike(s.v - 1.0, s.r > 0)
        s.r = where(s.z, c.n_ref, maximum(s.r - 1, 0))


def run(engine: str) -> dict[str, Tensor]:
    net = nw.Network(dt=1.0, seed=3, dtype=torch.float64)
    src = net.population("src", nw.PoissonSource(40, rate_hz=50.0))
    out = net.population("out", BoundedLIF(12))
    net.connect(src, out, nw.FixedProbability(0.3), weight=nw.Uniform(0.0, 0.8))
    return nw.Simulator(net, engine=engine).run(200, record={"out": ["spikes", "v"]})["out"]


def test_a_model_written_with_neurowire_model_runs_alike_on_torch_and_native():
    torch_out, native_out = run("torch"), run("native")
    assert int(torch_out["spikes"].sum()) > 0
    assert torch.equal(torch_out["spikes"], native_out["spikes"])
    torch.testing.assert_close(torch_out["v"], native_out["v"], rtol=1e-12, atol=1e-12)
    assert float(torch_out["v"].max()) <= 3.0 and float(torch_out["v"].min()) >= -1.0
