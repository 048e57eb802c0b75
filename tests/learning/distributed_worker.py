"""One worker of the distributed e-prop tests (not a test module).

``torchrun --standalone --nproc-per-node W distributed_worker.py train OUT [ENGINE]`` trains
:func:`trainer` with :func:`schedule` on every rank and saves ``OUT/rank<r>.pt`` (the trainer's
state and the metrics); the tests run the same schedule in one process and compare.

``torchrun ... distributed_worker.py classify PROBE OUT_DIR ARGS...`` runs
``neurowire classify --out OUT_DIR ARGS...`` and saves ``PROBE/rank<r>.json``: every file or
folder under ``OUT_DIR`` this rank opened for writing, created or renamed (from Python's audit
events), and the lines it printed.

Setting: float64, 5 Poisson-like inputs -> 8 ALIF -> 3 outputs, 40 steps; sparse input and
recurrent projections rewired by DEEP R (l1 large enough that synapses are removed from the first
batches), rate regulariser, Adam lr 0.05. Schedule: 2 epochs of ``fit`` over 22 samples in
batches of 6 (6, 6, 6, 4 trials), one ``train_step`` on an uneven batch of 7 trials, then
``evaluate`` over 9 samples in batches of 4 (the last batch of 1 trial leaves rank 1 empty).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import torch

import neurowire as nw
from neurowire.learning import distributed

STEPS, N_IN, N_OUT = 40, 5, 3


def trainer(engine: str = "torch", chunk_size: int | None = None) -> nw.EProp:
    net = nw.Network(dt=1.0, seed=3, dtype=torch.float64)
    inp = net.population("input", nw.SpikeSource(N_IN))
    hid = net.population(
        "hidden", nw.ALIF(8, tau_m=20.0, tau_a=200.0, beta=0.2, v_th=0.4, tau_refrac=2.0)
    )
    out = net.population("output", nw.LeakyIntegrator(N_OUT, tau=15.0))
    p_in = net.connect(inp, hid, nw.FixedProbability(0.6), weight=nw.Normal(0.3, 0.5), padding=1.5)
    p_rec = net.connect(hid, hid, nw.FixedProbability(0.4), weight=nw.Normal(0.0, 0.4), padding=1.5)
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0.0, 0.5))
    return nw.EProp(
        net,
        out,
        optimizer=nw.Adam(lr=0.05),
        regularization=nw.RateRegularizer(c=0.5, f_target_hz=20.0),
        rewiring={p_in: nw.DeepR(l1=0.05), p_rec: nw.DeepR(l1=0.05)},
        engine=engine,
        chunk_size=chunk_size,
    )


def data(n: int, seed: int) -> nw.data.SpikeDataset:
    gen = torch.Generator().manual_seed(seed)
    spikes = torch.rand(n, STEPS, N_IN, generator=gen) < 0.15
    labels = torch.randint(0, N_OUT, (n,), generator=gen)
    return nw.data.SpikeDataset(spikes, labels)


def schedule(tr: nw.EProp) -> dict:
    """The training run both sides execute; returns its metrics (without times)."""
    history = tr.fit(data(22, 1), epochs=2, batch_size=6, progress=False)
    extra = data(7, 2)
    step = tr.train_step(extra.spikes, extra.labels)
    ev = tr.evaluate(data(9, 3), batch_size=4)
    drop = ("time_s",)
    return {
        "history": [{k: v for k, v in h.items() if k not in drop} for h in history],
        "step": step,
        "evaluate": {k: v for k, v in ev.items() if k not in drop},
    }


def train(out: str, engine: str = "torch", chunks: str = "2") -> None:
    """``chunks``: trials per chunk (``"2"``: several chunks per rank, regulariser unfolded) or
    ``"auto"`` (one chunk per rank: spike counts summed between forward and backward pass, the
    regulariser folded)."""
    torch.set_num_threads(1)
    if not distributed.init_process_group("cpu"):
        raise SystemExit("run this under torchrun with --nproc-per-node >= 2")
    try:
        tr = trainer(engine, chunk_size=None if chunks == "auto" else int(chunks))
        metrics = schedule(tr)
        distributed.check_consistent(tr)
        torch.save(
            {"state": tr.state_dict(), "metrics": metrics, "world_size": tr.world_size},
            Path(out) / f"rank{tr.rank}.pt",
        )
    finally:
        torch.distributed.destroy_process_group()


def classify(probe: str, out: str, *args: str) -> None:
    from neurowire import cli

    root = os.path.realpath(out)
    writes: list[str] = []

    def under(path) -> str | None:
        if isinstance(path, int):
            return None
        full = os.path.realpath(os.fsdecode(path))
        return full if full == root or full.startswith(root + os.sep) else None

    def hook(event: str, hook_args: tuple) -> None:
        if event == "open":
            path, mode, flags = hook_args
            writing = any(c in (mode or "") for c in "wax+") or bool(
                (flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if writing and under(path):
                writes.append(f"open {under(path)}")
        elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove"):
            for path in hook_args[:2] if event != "os.mkdir" else hook_args[:1]:
                if not isinstance(path, int) and under(path):
                    writes.append(f"{event} {under(path)}")

    sys.addaudithook(hook)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = cli.main(["classify", "--out", out, *args])
    rank = os.environ["RANK"]
    result = {"status": status, "writes": writes, "stdout": printed.getvalue()}
    (Path(probe) / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    {"train": train, "classify": classify}[sys.argv[1]](*sys.argv[2:])
