"""A sparse recurrent ALIF classifier on MNIST-1D, trained by e-prop while DEEP R rewires it.

MNIST-1D is generated offline by the ``mnist1d`` package (no download) and level-crossing
encoded into 256 spike channels. The input and recurrent projections start at 1 % density with
rows padded 2x; after every batch DEEP R removes the synapses whose weight crossed zero and
re-adds as many at random unconnected pairs, so the number of synapses stays exact.

Run:  python examples/eprop_deep_r.py            (L1 chosen on held-out training data; minutes)
      python examples/eprop_deep_r.py --tiny     (a few batches of a small network, seconds)
"""

import argparse

import neurowire as nw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds of wall time")
    args = parser.parse_args()
    if args.tiny:  # 80 / 20 samples, 64 hidden neurons, 10 % density, a fixed L1
        n_samples, hidden, density, epochs, l1 = 100, 64, 0.1, 1, 0.01
    else:  # the size of `neurowire classify --deep-r`
        n_samples, hidden, density, epochs, l1 = 5000, 512, 0.01, 10, "auto"

    train, test = nw.data.mnist1d(n_samples=n_samples)  # (spikes [T, 256], label) samples
    n_in = train.n_in
    net = nw.Network(dt=1.0, seed=0)
    inp = net.population("input", nw.SpikeSource(n_in))
    hid = net.population("hidden", nw.ALIF(hidden, v_th=0.6, tau_refrac=5.0))
    out = net.population("output", nw.LeakyIntegrator(10, tau=20.0))
    p_in = net.connect(
        inp, hid, nw.FixedProbability(density), weight=nw.Normal(0, n_in**-0.5), padding=2.0
    )
    p_rec = net.connect(
        hid, hid, nw.FixedProbability(density), weight=nw.Normal(0, hidden**-0.5), padding=2.0
    )
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0, hidden**-0.5))

    trainer = nw.EProp(
        net,
        output=out,
        optimizer=nw.Adam(lr=2e-3),
        regularization=nw.RateRegularizer(c=1e-3, f_target_hz=10.0),
        rewiring={p_in: nw.DeepR(l1=l1), p_rec: nw.DeepR(l1=l1)},
    )
    history = trainer.fit(
        train, epochs=epochs, batch_size=16 if args.tiny else 32, progress=not args.tiny
    )
    if trainer.l1_selection is not None:  # l1="auto": the sweep's outcome
        print(f"L1 chosen on held-out training data: {trainer.l1_selection.chosen}")
    metrics = trainer.evaluate(test)
    print(
        f"epoch {len(history)}: train loss {history[-1]['loss']:.3f}, "
        f"test accuracy {metrics['accuracy']:.3f}"
    )
    for proj in (p_in, p_rec):
        totals = trainer.rewiring_log.totals(proj.name)
        print(f"{proj.name}: {proj.synapses.nnz} synapses, rewired {totals['added']}")


if __name__ == "__main__":
    main()
