"""BPTT with sparse, rewiring layers: a recurrent spiking classifier on MNIST-1D, three ways.

The same recurrent network of spiking neurons, trained by backpropagation through time with a
surrogate gradient and Adam, with its input and recurrent weights as

* ``dense``: ``torch.nn.Linear`` layers (every pair connected);
* ``static``: ``nw.nn.SparseLinear`` / ``nw.nn.SparseRecurrent`` at ``--density`` (the wiring
  drawn once and kept);
* ``deep_r``: the same sparse layers rewired by ``nw.nn.DeepR`` after every optimiser step (the
  synapse count stays exact), with its L1 shrink applied after Adam's step (``mode="original"``)
  at the strength chosen on a validation split (``--l1 auto`` repeats the choice).

The hidden neurons are neurowire's own ``nw.LIF`` run by ``nw.nn.NeuronCell`` (its surrogate is
the model's e-prop pseudo-derivative, peak 0.3 / v_th), or with ``--neurons snntorch``
snnTorch's ``Leaky`` (whose default arctan surrogate, peak 1, let the gradients of this 157-step
recurrent loop explode to norms of 10^4 in our runs). The readout is a dense linear layer on the
hidden spike counts in ``bins`` consecutive time windows (MNIST-1D's classes differ in the order
of their values, which a count over the whole trial would lose). The data is the built-in
MNIST-1D (generated offline, no download). The time loop's operations are small, so the script
runs PyTorch on one thread (faster here than two, and much faster on a busy machine).

Run:  python examples/bptt_deep_r.py                  (3 configurations, 1 seed; about 15 min)
      python examples/bptt_deep_r.py --seeds 0 1 2    (the 3-seed comparison)
      python examples/bptt_deep_r.py --l1 auto        (choose L1 first; about 5 min more)
      python examples/bptt_deep_r.py --tiny           (a few batches of a small network, seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

import neurowire as nw

KINDS = ("dense", "static", "deep_r")
EPOCHS = 30
#: Adam's learning rate
LR = 3e-3
#: DEEP R's L1 strength, chosen by ``--l1 auto`` (:func:`choose_l1`) on a validation split of
#: seed 0 (``benchmarks/results/bptt_deep_r_l1.json``)
L1 = 0.003
#: the values ``--l1 auto`` tries, and the epochs each is trained for
L1_GRID = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1)
SELECTION_EPOCHS = 5


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


def evaluate(model: nn.Module, data, batch_size: int = 256) -> dict[str, float]:
    """``{"accuracy": ..., "loss": ...}`` of ``model`` on ``data`` (mean cross-entropy)."""
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(data, batch_size=batch_size):
            scores = model(x)
            correct += int((scores.argmax(1) == y).sum())
            loss += float(nn.functional.cross_entropy(scores, y, reduction="sum"))
    model.train()
    return {"accuracy": correct / len(data), "loss": loss / len(data)}


class Run:
    """One configuration ready to train: model, Adam, the DEEP R rewirer (``deep_r`` only)
    and a seeded shuffling generator.

    Args:
        kind, n_in, hidden, density, seed, neurons: as in :class:`Classifier` (10 classes).
        l1: DEEP R's L1 strength (``mode="original"``: every optimiser step shrinks each
            synapse's magnitude by ``lr * l1``, outside Adam).
        lr: Adam's learning rate.
    """

    def __init__(
        self,
        kind: str,
        n_in: int,
        hidden: int,
        density: float,
        seed: int,
        l1: float,
        lr: float,
        neurons: str = "neurowire",
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.model = Classifier(kind, n_in, hidden, 10, density, seed, neurons=neurons)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        # Decoupled L1 (like AdamW's decoupled weight decay): an L1 term added to the gradient
        # would be rescaled by Adam, which pushes every quiet synapse to zero at full speed.
        self.rewirer = (
            nw.nn.DeepR(self.model, self.optimizer, l1=l1, mode="original", seed=seed)
            if kind == "deep_r"
            else None
        )
        self.shuffle = torch.Generator().manual_seed(seed)

    def fit_epoch(self, data, batch_size: int) -> None:
        """One epoch of BPTT over ``data`` in shuffled mini-batches."""
        loader = torch.utils.data.DataLoader(
            data, batch_size=batch_size, shuffle=True, generator=self.shuffle
        )
        for x, y in loader:
            loss = nn.functional.cross_entropy(self.model(x), y)
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)  # BPTT's usual guard
            self.optimizer.step()
            if self.rewirer is not None:
                self.rewirer.step()

    def synapses(self) -> dict[str, int]:
        """Synapse count of the input and recurrent layers."""
        return {
            name: (m.synapses.nnz if hasattr(m, "synapses") else m.weight.numel())
            for name, m in (("input", self.model.inp), ("recurrent", self.model.rec))
        }


def dataset(tiny: bool):
    """The built-in MNIST-1D ``(train, test)``; ``tiny``: 100 samples."""
    return nw.data.mnist1d(n_samples=100 if tiny else 5000)


def train(
    kind: str,
    epochs: int = EPOCHS,
    seed: int = 0,
    tiny: bool = False,
    hidden: int = 256,
    density: float = 0.1,
    l1: float = L1,
    lr: float = LR,
    batch_size: int = 128,
    neurons: str = "neurowire",
) -> dict[str, Any]:
    """Train one configuration; returns test accuracy per epoch, the final one and the time.

    ``tiny`` shrinks data and network to a few seconds of wall time (for tests).
    """
    train_set, test_set = dataset(tiny)
    hidden = 32 if tiny else hidden
    run = Run(kind, train_set.n_in, hidden, density, seed, l1, lr, neurons)
    history, train_s = [], 0.0
    for _ in range(epochs):
        tic = time.perf_counter()
        run.fit_epoch(train_set, batch_size)
        train_s += time.perf_counter() - tic
        history.append(evaluate(run.model, test_set)["accuracy"])
    return {
        "kind": kind,
        "seed": seed,
        "test_accuracy": history[-1],
        "history": history,
        "train_s": train_s,
        "synapses": run.synapses(),
        "neurons": "snntorch.Leaky" if run.model.uses_snntorch else "nw.LIF",
    }


def choose_l1(
    grid: Sequence[float] = L1_GRID,
    epochs: int = SELECTION_EPOCHS,
    seed: int = 0,
    tiny: bool = False,
    hidden: int = 256,
    density: float = 0.1,
    lr: float = LR,
    batch_size: int = 128,
    neurons: str = "neurowire",
) -> nw.learning.L1Selection:
    """DEEP R's L1 chosen by :func:`neurowire.nn.select_l1` on a validation split of the
    training set (the test set is not read)."""
    train_set, _ = dataset(tiny)
    hidden = 32 if tiny else hidden

    def build(l1: float) -> Run:
        return Run("deep_r", train_set.n_in, hidden, density, seed, l1, lr, neurons)

    return nw.nn.select_l1(
        build,
        lambda run, data: run.fit_epoch(data, batch_size),
        lambda run, data: evaluate(run.model, data),
        train_set,
        grid=grid,
        epochs=epochs,
        seed=seed,
    )


def l1_argument(text: str) -> float | str:
    """``--l1``: a number >= 0 or ``auto``."""
    if text == "auto":
        return text
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"--l1 must be 'auto' or a number >= 0, got {text}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds of wall time")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument(
        "--l1",
        type=l1_argument,
        default=L1,
        help=f"DEEP R's L1 strength, or 'auto' to choose it from {L1_GRID} on a validation "
        f"split ({SELECTION_EPOCHS} epochs each, first seed)",
    )
    parser.add_argument("--neurons", choices=["neurowire", "snntorch"], default="neurowire")
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--json", type=Path, help="also write every run's results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    epochs = 1 if args.tiny else args.epochs
    common = {"density": args.density, "lr": args.lr, "neurons": args.neurons}
    report: dict[str, Any] = {"settings": vars(args) | {"json": str(args.json)}}
    l1 = args.l1
    if l1 == "auto":
        selection = choose_l1(
            epochs=1 if args.tiny else SELECTION_EPOCHS,
            seed=args.seeds[0],
            tiny=args.tiny,
            **common,
        )
        for value, acc in zip(selection.grid, selection.val_accuracy, strict=True):
            print(f"L1 {value:g}: validation accuracy {acc:.3f}")
        l1 = selection.chosen
        print(f"chosen L1 {l1:g} ({selection.wall_s:.0f} s)")
        report["l1_selection"] = selection.to_dict()
    results = {kind: [] for kind in args.kinds}
    for seed in args.seeds:
        for kind in args.kinds:
            r = train(kind, epochs, seed, args.tiny, l1=l1, **common)
            results[kind].append(r)
            print(
                f"seed {seed} {kind:7s} test accuracy {r['test_accuracy']:.3f} "
                f"({r['train_s']:.1f} s training, synapses {r['synapses']}, {r['neurons']})"
            )
    for kind, rs in results.items():
        accs = [r["test_accuracy"] for r in rs]
        print(f"{kind:7s} mean test accuracy {sum(accs) / len(accs):.3f} over {len(accs)} seed(s)")
    if args.json is not None:
        report |= {"l1": l1, "results": results}
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
