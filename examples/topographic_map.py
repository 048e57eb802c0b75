"""A small topographic map: STDP plus distance-dependent formation and weight-dependent
elimination (the rules of Bamford et al. 2010) on a periodic 16 x 16 sheet.

A Poisson sheet fires a Gaussian bump of activity that jumps to a random place every 20 ms;
feed-forward and lateral synapses onto a LIF sheet learn by STDP, and ``DistanceRewiring``
forms synapses with a probability that falls with distance and eliminates weak ones. The map's
quality is measured by the mean AD (distance of each receptive-field centre from its neuron)
and the mean sigma_aff (receptive-field spread), by connectivity and by weight.
``neurowire topomap`` runs the full experiment with every output and figure.

Run:  python examples/topographic_map.py            (20 s of model time)
      python examples/topographic_map.py --tiny     (0.3 s, seconds of wall time)
"""

import argparse

import numpy as np
import torch

import neurowire as nw
from neurowire.analysis import map_quality

SIDE, G_MAX, DT = 16, 0.2, 0.1  # neurons per side, max conductance [uS], time step [ms]


def bump_table(base_hz: float = 5.0, peak_hz: float = 152.8, sigma: float = 2.0) -> torch.Tensor:
    """Rates [Hz] of a bump centred on every neuron: [SIDE * SIDE centres, SIDE * SIDE]."""
    grid, ids = nw.Grid(SIDE, SIDE), torch.arange(SIDE * SIDE)
    d = grid.distance(ids[:, None], ids[None, :])  # periodic distance [grid units]
    return base_hz + peak_hz * torch.exp(-(d * d) / (2.0 * sigma**2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds of wall time")
    args = parser.parse_args()
    seconds = 0.3 if args.tiny else 20.0
    n = SIDE * SIDE

    net = nw.Network(dt=DT, seed=0)
    src = net.population("source", nw.PoissonSource(n, rate_hz=20.0, grid=(SIDE, SIDE)))
    tgt = net.population(
        "target", nw.LIF.biophysical(n, v_init=nw.Normal(-60.0, 5.0), grid=(SIDE, SIDE))
    )
    stdp = nw.STDP(a_plus=0.1 * G_MAX, a_minus=0.1 * G_MAX * 1.2 * 20 / 64, w_max=G_MAX)
    psc = nw.ExpCond(tau=5.0, e_rev=0.0)
    projections = []
    for name, pre, p_peak, sigma in (("ff", src, 0.16, 2.5), ("lat", tgt, 1.0, 1.0)):
        proj = net.connect(
            pre,
            tgt,
            nw.GaussianDistance(p_peak, sigma),
            weight=G_MAX,
            synapse=stdp,
            psc=psc,
            capacity=64,
            name=name,
        )
        rule = nw.DistanceRewiring(
            p_peak,
            sigma,
            p_elim_dep=1.2,
            p_elim_pot=0.0068,
            w_threshold=G_MAX / 2,
            w_init=G_MAX,
            attempts=10,
        )
        net.add_rule(rule, proj, every=int(1.0 / DT), log_events=True)  # every 1 ms
        projections.append(proj)

    table, rng = bump_table(), np.random.default_rng(1)

    def move_bump(sim: nw.Simulator) -> None:
        sim.set_rates("source", table[rng.integers(n)], check=False)

    net.add_callback(move_bump, every=int(20.0 / DT))  # every 20 ms

    ff = projections[0]
    before = map_quality(*ff.synapses.coo(), (SIDE, SIDE))
    sim = nw.Simulator(net)
    result = sim.run(int(round(seconds * 1000 / DT)))
    pre, post = ff.synapses.coo()
    after = map_quality(pre, post, (SIDE, SIDE))
    by_weight = map_quality(pre, post, (SIDE, SIDE), weight=ff.synapses.values("weight"))
    print(
        f"{result.model_ms:.0f} ms model time in {result.wall_s:.2f} s wall "
        f"(real-time factor {result.real_time_factor:.3f}, engine {sim.engine!r})"
    )
    for proj in projections:
        print(f"{proj.name}: {proj.synapses.nnz} synapses, {sim.rewiring_log.totals(proj.name)}")
    print(
        f"AD {before['ad']:.2f} -> {after['ad']:.2f} (by weight {by_weight['ad']:.2f}); "
        f"sigma_aff {before['sigma_aff']:.2f} -> {after['sigma_aff']:.2f} "
        f"(by weight {by_weight['sigma_aff']:.2f}) [grid units]"
    )


if __name__ == "__main__":
    main()
