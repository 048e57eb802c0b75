"""BPTT with sparse, rewiring layers: a recurrent spiking classifier on MNIST-1D, three ways.

The same recurrent network of spiking neurons, trained by backpropagation through time with a
surrogate gradient and Adam, with its input and recurrent weights as

* ``dense``: ``torch.nn.Linear`` layers (every pair connected);
* ``static``: ``nw.nn.SparseLinear`` / ``nw.nn.SparseRecurrent`` at ``--density`` (the wiring
  drawn once and kept);
* ``deep_r``: the same sparse layers rewired by ``nw.nn.DeepR`` after every optimiser step (the
  synapse count stays exact).

The hidden neurons are neurowire's own ``nw.LIF`` run by ``nw.nn.NeuronCell`` (its surrogate is
the model's e-prop pseudo-derivative, peak 0.3 / v_th), or with ``--neurons snntorch``
snnTorch's ``Leaky`` (whose default arctan surrogate, peak 1, let the gradients of this 157-step
recurrent loop explode to norms of 10^4 in our runs). The readout is a dense linear layer on the
hidden spike counts in ``bins`` consecutive time windows (MNIST-1D's classes differ in the order
of their values, which a count over the whole trial would lose). The data is the built-in
MNIST-1D (generated offline, no download). The time loop's operations are small, so the script
runs PyTorch on one thread (faster here than two, and much faster on a busy machine).

Run:  python examples/bptt_deep_r.py                  (3 configurations, 1 seed; minutes)
      python examples/bptt_deep_r.py --seeds 0 1 2    (the 3-seed comparison)
      python examples/bptt_deep_r.py --tiny           (a few batches of a small network, seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import neurowire as nw

KINDS = ("dense", "static", "deep_r")
#: the L1 strength of DEEP R, per unit of a batch-mean loss's gradient (see ``nw.nn.DeepR``)
L1 = 1e-4


class Classifier(nn.Module):
    """Spikes ``[B, T, n_in]`` -> class scores ``[B, n_out]``.

    Args:
        kind: ``"dense"``, ``"static"`` or ``"deep_r"`` (the last two build sparse layers).
        n_in, hidden, n_out: layer sizes.
        density: connection probability of the sparse input and recurrent layers.
        seed: seeds the wiring and the initial weights.
        tau_m: membrane time constant [ms] at ``dt`` = 1 ms.
        bins: time windows of the readout.
        neurons: ``"neurowire"`` (``NeuronCell(nw.LIF)``) or ``"snntorch"`` (``snntorch.Leaky``).
        input_gain: the input weights' initial scale relative to ``nn.Linear``'s (the inputs
            are sparse spikes, so the default scale would leave the hidden layer silent).
    """

    def __init__(
        self,
        kind: str,
        n_in: int,
        hidden: int,
        n_out: int,
        density: float,
        seed: int,
        tau_m: float = 20.0,
        bins: int = 8,
        input_gain: float = 5.0,
        neurons: str = "neurowire",
    ) -> None:
        super().__init__()
        torch.manual_seed(seed)
        if kind == "dense":
            self.inp = nn.Linear(n_in, hidden)
            self.rec = nn.Linear(hidden, hidden, bias=False)
        else:
            gen = torch.Generator().manual_seed(seed)
            conn = nw.FixedProbability(density)
            self.inp = nw.nn.SparseLinear(n_in, hidden, conn, generator=gen)
            self.rec = nw.nn.SparseRecurrent(hidden, conn, generator=gen)
        with torch.no_grad():
            self.inp.weight.mul_(input_gain)
        self.out = nn.Linear(hidden * bins, n_out)
        self.hidden, self.bins = hidden, bins
        if neurons not in ("neurowire", "snntorch"):
            raise ValueError(f"neurons must be 'neurowire' or 'snntorch', got {neurons!r}")
        self.uses_snntorch = neurons == "snntorch"
        if self.uses_snntorch:
            import snntorch

            self.neurons = snntorch.Leaky(beta=math.exp(-1.0 / tau_m))
        else:
            self.neurons = nw.nn.NeuronCell(nw.LIF(hidden, tau_m=tau_m, v_th=1.0), dt=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        current = self.inp(x.float())  # [B, T, hidden], every step at once
        z = torch.zeros(batch, self.hidden)
        state = torch.zeros(batch, self.hidden) if self.uses_snntorch else None
        spikes = []
        for i_t in current.unbind(1):  # one backward node for all steps, not one per index
            z, state = self.neurons(i_t + self.rec(z), state)
            spikes.append(z)
        counts = [chunk.mean(1) for chunk in torch.stack(spikes, 1).tensor_split(self.bins, 1)]
        return self.out(torch.cat(counts, 1))


def accuracy(model: nn.Module, data, batch_size: int = 256) -> float:
    """Share of ``data``'s samples classified correctly."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(data, batch_size=batch_size):
            correct += int((model(x).argmax(1) == y).sum())
    model.train()
    return correct / len(data)


def train(
    kind: str,
    epochs: int = 8,
    seed: int = 0,
    tiny: bool = False,
    hidden: int = 256,
    density: float = 0.1,
    l1: float = L1,
    lr: float = 1e-3,
    batch_size: int = 128,
    neurons: str = "neurowire",
) -> dict[str, Any]:
    """Train one configuration; returns test accuracy per epoch, the final one and the time.

    ``tiny`` shrinks data and network to a few seconds of wall time (for tests).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    n_samples = 100 if tiny else 5000
    hidden = 32 if tiny else hidden
    train_set, test_set = nw.data.mnist1d(n_samples=n_samples)
    model = Classifier(kind, train_set.n_in, hidden, 10, density, seed, neurons=neurons)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    rewirer = nw.nn.DeepR(model, optimizer, l1=l1, seed=seed) if kind == "deep_r" else None
    loader = torch.utils.data.DataLoader(
        train_set,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    history, train_s = [], 0.0
    for _ in range(epochs):
        tic = time.perf_counter()
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # BPTT's usual guard
            optimizer.step()
            if rewirer is not None:
                rewirer.step()
        train_s += time.perf_counter() - tic
        history.append(accuracy(model, test_set))
    synapses = {
        name: (m.synapses.nnz if hasattr(m, "synapses") else m.weight.numel())
        for name, m in (("input", model.inp), ("recurrent", model.rec))
    }
    return {
        "kind": kind,
        "seed": seed,
        "test_accuracy": history[-1],
        "history": history,
        "train_s": train_s,
        "synapses": synapses,
        "neurons": "snntorch.Leaky" if model.uses_snntorch else "nw.LIF",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds of wall time")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--l1", type=float, default=L1)
    parser.add_argument("--neurons", choices=["neurowire", "snntorch"], default="neurowire")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--json", type=Path, help="also write every run's results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    epochs = 1 if args.tiny else args.epochs
    results = {kind: [] for kind in KINDS}
    for seed in args.seeds:
        for kind in KINDS:
            r = train(
                kind,
                epochs,
                seed,
                args.tiny,
                density=args.density,
                l1=args.l1,
                lr=args.lr,
                neurons=args.neurons,
            )
            results[kind].append(r)
            print(
                f"seed {seed} {kind:7s} test accuracy {r['test_accuracy']:.3f} "
                f"({r['train_s']:.1f} s training, synapses {r['synapses']}, {r['neurons']})"
            )
    for kind, rs in results.items():
        accs = [r["test_accuracy"] for r in rs]
        print(f"{kind:7s} mean test accuracy {sum(accs) / len(accs):.3f} over {len(accs)} seed(s)")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"settings": vars(args) | {"json": str(args.json)}, "results": results}, indent=1
            )
        )


if __name__ == "__main__":
    main()
