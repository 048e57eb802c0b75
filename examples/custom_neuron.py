"""A neuron model written once in the model language and run by two engines.

``ThresholdLIF`` is a LIF neuron whose threshold jumps by ``jump`` at every spike and relaxes
back with ``tau_th``. Its equations are one ``update`` method; the torch engine runs it on
tensors and the native engine translates it to numba code (printed below).

Run:  python examples/custom_neuron.py [--tiny]
"""

import argparse
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

import neurowire as nw
from neurowire.model import decay, maximum, refractory_steps, spike, where


class ThresholdLIFState(NamedTuple):
    v: Tensor  # [B, n] membrane potential
    th: Tensor  # [B, n] threshold above v_th
    r: Tensor  # [B, n] int32, refractory steps left
    z: Tensor  # [B, n] bool, spikes of this step (always last)


@dataclass(frozen=True)
class ThresholdLIF(nw.NeuronModel):
    """LIF with a spike-triggered threshold. Times in ms."""

    tau_m: float = 20.0
    tau_th: float = 100.0
    v_th: float = 1.0
    jump: float = 0.5
    tau_refrac: float = 2.0

    state_type: ClassVar[type] = ThresholdLIFState

    def init_state(self, batch, device, dtype, generator=None):
        zeros = torch.zeros(batch, self.n, dtype=dtype, device=device)
        return ThresholdLIFState(
            zeros,
            zeros.clone(),
            torch.zeros(batch, self.n, dtype=torch.int32, device=device),
            torch.zeros(batch, self.n, dtype=torch.bool, device=device),
        )

    def constants(self, dt):  # per-step numbers, derived from dt once
        return {
            "alpha": decay(self.tau_m, dt),
            "rho": decay(self.tau_th, dt),
            "v_th": float(self.v_th),
            "jump": float(self.jump),
            "n_ref": refractory_steps(self.tau_refrac, dt),
        }

    def update(self, s, c, i_syn):  # the model language: elementwise, no Python branches on s
        refractory = s.r > 0
        s.v = c.alpha * s.v + i_syn - (c.v_th + s.th) * s.z  # reset by subtraction
        s.th = c.rho * s.th + c.jump * s.z
        s.z = spike(s.v - (c.v_th + s.th), refractory)
        s.r = where(s.z, c.n_ref, maximum(s.r - 1, 0))


def simulate(engine: str, steps: int, n: int):
    net = nw.Network(dt=1.0, seed=0)
    src = net.population("src", nw.PoissonSource(100, rate_hz=20.0))
    out = net.population("out", ThresholdLIF(n))
    net.connect(src, out, nw.FixedProbability(0.2), weight=nw.Uniform(0.0, 0.3))
    sim = nw.Simulator(net, engine=engine)
    return sim, sim.run(steps, record={"out": ["spikes", "th"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds of wall time")
    args = parser.parse_args()
    steps, n = (200, 16) if args.tiny else (5_000, 256)

    _, eager = simulate("torch", steps, n)
    native_sim, native = simulate("native", steps, n)
    z_eager, z_native = eager["out"]["spikes"], native["out"]["spikes"]
    rate = z_eager.float().mean().item() * 1000.0  # dt = 1 ms
    print(
        f"torch: {int(z_eager.sum())} spikes ({rate:.1f} Hz), "
        f"mean extra threshold {eager['out']['th'].mean().item():.3f}"
    )
    print(
        f"native: {int(z_native.sum())} spikes; same spike trains: "
        f"{bool(torch.equal(z_eager, z_native))}"
    )
    lines = [ln for ln in native_sim.generated_source().splitlines() if "_th" in ln]
    print("generated numba lines for the threshold:")
    print("\n".join(lines[:4]))


if __name__ == "__main__":
    main()
