"""A Poisson sheet driving LIF neurons through STDP synapses that a structural rule rewires.

Run:  python examples/quickstart_simulation.py          (5 s of model time)
      python examples/quickstart_simulation.py --tiny   (0.2 s, a few seconds of wall time)
"""

import argparse

import neurowire as nw


class PruneAndRegrow(nw.StructuralRule):
    """Remove synapses whose weight fell below ``threshold``; regrow as many per row."""

    def __init__(self, threshold: float, w_new: float) -> None:
        self.threshold, self.w_new = threshold, w_new

    def update(self, s: nw.SynapseView, ctx: nw.RuleContext) -> None:
        removed = s.remove(s["weight"] < self.threshold)  # int [n_pre]: removed per row
        s.grow(per_row=removed, weight=self.w_new)  # uniformly drawn free targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds of wall time")
    args = parser.parse_args()
    side, seconds = (8, 0.2) if args.tiny else (16, 5.0)

    net = nw.Network(dt=0.1, seed=0)  # dt in ms
    src = net.population("src", nw.PoissonSource(side * side, rate_hz=20.0, grid=(side, side)))
    tgt = net.population("tgt", nw.LIF.biophysical(side * side, grid=(side, side)))  # mV
    ff = net.connect(
        src,
        tgt,
        nw.GaussianDistance(p_peak=0.16, sigma=2.5),
        weight=nw.Uniform(0.0, 0.2),  # STDP keeps weights in [0, 0.2]
        synapse=nw.STDP(),
        psc=nw.ExpCond(tau=5.0, e_rev=0.0),
        capacity=64,
    )
    net.add_rule(PruneAndRegrow(threshold=0.1, w_new=0.2), ff, every=10)  # every 10 steps

    sim = nw.Simulator(net)  # CPU; nw.Simulator(net, device="cuda") on a GPU
    steps = int(round(seconds * 1000 / net.dt))
    result = sim.run(steps, record={"tgt": ["spikes"]})

    spikes = result.records["tgt"]["spikes"]  # bool [B, T, n]
    rate_hz = spikes.float().mean().item() / (net.dt * 1e-3)
    totals = sim.rewiring_log.totals(ff.name)
    print(
        f"simulated {result.model_ms:.0f} ms in {result.wall_s:.2f} s "
        f"(engine {sim.engine!r}, real-time factor {result.real_time_factor:.3f})"
    )
    print(f"target rate {rate_hz:.1f} Hz; {ff.synapses.nnz} synapses; rewiring {totals}")


if __name__ == "__main__":
    main()
