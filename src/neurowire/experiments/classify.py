"""Sparse recurrent spiking classifiers trained by e-prop and rewired by DEEP R
(``neurowire classify``), after Knight, Senk & Nowotny 2025 (arXiv 2510.19764).

Input spike source -> one recurrent hidden layer (ALIF or LIF, e-prop convention) -> a leaky
integrator readout (``Dense()``, never rewired). The input and recurrent projections are

* ``dense``: ``Dense()`` matrices;
* ``static``: ``FixedProbability`` at the given densities, rows unpadded (as the paper's static
  runs), never rewired;
* ``deep_r``: the same densities with rows padded ``--padding`` times, rewired by
  :class:`~neurowire.DeepR` after every batch.

``--compare`` trains all three on the same data and seed and prints a table. Every epoch, each
configuration's trainer is checkpointed (``DIR/checkpoints/<name>.pt``); ``--resume`` continues
from there and reproduces an uninterrupted run. Writes ``DIR/summary.json`` and figures.
Weights start as ``Normal(0, 1/sqrt(fan-in of the full layer))``, not rescaled by density.

``--lesion EPOCH:FRACTION`` deletes, after epoch ``EPOCH``, a random ``FRACTION`` of the hidden
layer's input and recurrent synapses (each projection separately, drawn from a generator seeded
by ``--seed``: :class:`~neurowire.learning.Lesion`) and trains on to ``--epochs``. Static sparse
projections lose the synapses for good; DEEP R keeps its budget, the original count, and so
regrows as many at its next batch (:mod:`neurowire.structural.deep_r`); dense projections have
the same share of weights held at zero. The summary gives, per configuration, the test accuracy
just before and just after the cut, the epochs until it is back within one point
(:func:`~neurowire.analysis.lesion_summary`) and the final accuracy; ``lesion.png`` draws it.

Under ``torchrun --nproc-per-node N -m neurowire classify ...`` (several nodes: torchrun's
rendezvous) the ranks split every batch (:mod:`neurowire.learning.distributed`; gloo on the CPU,
NCCL with ``--device cuda``, which becomes ``cuda:LOCAL_RANK``); only rank 0 prints, shows
progress and writes outputs and checkpoints. A checkpoint holds global state only, so
``--resume`` continues on any number of ranks (every rank reads it: on several nodes ``--out``
must be a shared folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import neurowire as nw
from neurowire import analysis, checks
from neurowire.data.errors import DataFileError
from neurowire.experiments import checkpoints as ckpt
from neurowire.experiments import lesions, options
from neurowire.experiments.outputs import OutputError, RunFolder, warn
from neurowire.io import CheckpointError
from neurowire.learning import distributed
from neurowire.learning import l1_selection as l1sel
from neurowire.learning.checkpoint import Checkpointer
from neurowire.learning.lesion import Lesion
from neurowire.learning.loop import Callback

DATASETS = ("mnist1d", "patterns", "shd", "ssc", "dvs_gesture", "nmnist")
CONFIGURATIONS = ("dense", "static", "deep_r")
MODELS = ("alif", "lif")


class UsageError(ValueError):
    """A bad flag, found before any work."""


@dataclass
class ClassifyConfig:
    """Settings of one ``neurowire classify`` run (defaults: the built-in demo)."""

    dataset: str = "mnist1d"
    data_dir: str = "data"
    hidden: int = 512
    model: str = "alif"
    input_density: float = 0.01
    recurrent_density: float = 0.01
    padding: float = 2.0
    deep_r: bool = False
    compare: bool = False
    l1: float | str = "auto"
    l1_grid: list[float] = field(default_factory=lambda: list(l1sel.L1_GRID))
    l1_epochs: int = l1sel.SWEEP_EPOCHS
    validation_fraction: float = l1sel.VALIDATION_FRACTION
    regrow: str = "pair"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0
    device: str = "cpu"
    method: str = "factorized"
    dt: float = 1.0
    reg_strength: float = 1e-3
    reg_target_hz: float = 10.0
    out: str = "runs/classify"
    resume: bool = False
    overwrite: bool = False
    fresh: bool = False  # with resume: start a run when --out holds none
    progress: bool = True
    configurations: list[str] = field(default_factory=list)
    lesion_epoch: int | None = None  # with lesion_fraction: --lesion EPOCH:FRACTION
    lesion_fraction: float | None = None

    def __post_init__(self) -> None:
        self._check()
        if not self.configurations:
            if self.compare:
                self.configurations = list(CONFIGURATIONS)
            elif self.input_density >= 1.0 and self.recurrent_density >= 1.0:
                self.configurations = ["dense"]
            else:
                self.configurations = ["deep_r" if self.deep_r else "static"]

    def _check(self) -> None:
        if self.dataset not in DATASETS:
            raise UsageError(
                f"--dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}"
            )
        if self.model not in MODELS:
            raise UsageError(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        for name, high in INTEGER_LIMITS.items():
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= high:
                raise UsageError(f"{_flag(name)} must be an integer in [1, {high}], got {val}")
        try:
            self.seed = checks.check_seed("--seed", self.seed)
            for name, (low, high, low_open) in NUMBER_LIMITS.items():
                limits = {"low": low, "high": high, "low_open": low_open}
                setattr(self, name, checks.check_number(_flag(name), getattr(self, name), **limits))
            if self.l1 != "auto":
                if isinstance(self.l1, str):
                    raise UsageError(f"--l1 must be 'auto' or a number, got {self.l1!r}")
                self.l1 = checks.check_number("--l1", self.l1, low=0.0, high=L1_MAX)
            self.l1_grid = l1sel.check_grid(self.l1_grid)
            for value in self.l1_grid:
                checks.check_number("--l1-grid value", value, low=0.0, high=L1_MAX)
        except checks.ParameterError as err:
            raise UsageError(str(err)) from None
        except ValueError as err:
            raise UsageError(f"--l1-grid: {err}") from None
        if self.regrow not in nw.structural.deep_r.REGROW:
            raise UsageError(f"--regrow must be 'pair' or 'row', got {self.regrow!r}")
        if self.method not in ("factorized", "online"):
            raise UsageError(f"--method must be 'factorized' or 'online', got {self.method!r}")
        self._check_lesion()
        check_device(self.device)

    def _check_lesion(self) -> None:
        epoch, fraction = self.lesion_epoch, self.lesion_fraction
        if epoch is None and fraction is None:
            return
        if epoch is None or fraction is None:
            raise UsageError(
                f"--lesion needs EPOCH:FRACTION, got epoch {epoch}, fraction {fraction}"
            )
        if self.epochs < 2:
            raise UsageError(
                f"--lesion needs --epochs 2 or more (it cuts after an epoch and trains on), got "
                f"--epochs {self.epochs}"
            )
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch < self.epochs:
            raise UsageError(
                f"--lesion EPOCH must be an integer in [1, {self.epochs - 1}] (the cut comes "
                f"after an epoch and before the last of --epochs {self.epochs}), got {epoch}"
            )
        try:
            self.lesion_fraction = checks.check_number(
                "--lesion FRACTION", fraction, low=0.0, high=1.0, low_open=True, high_open=True
            )
        except checks.ParameterError as err:
            raise UsageError(str(err)) from None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


#: Upper limits of the integer settings (lower limit 1).
INTEGER_LIMITS = {
    "hidden": 1_000_000,
    "epochs": 100_000,
    "batch_size": 1_000_000,
    "l1_epochs": 1000,
}
#: ``(low, high, low excluded)`` of the real-valued settings.
NUMBER_LIMITS = {
    "input_density": (0.0, 1.0, True),
    "recurrent_density": (0.0, 1.0, True),
    "padding": (1.0, 1000.0, False),
    "validation_fraction": (0.0, 0.99, True),
    "lr": (0.0, 1.0, True),
    "dt": (1e-3, 100.0, False),
    "reg_strength": (0.0, 1e3, False),
    "reg_target_hz": (0.0, 1e4, False),
}
#: Largest L1 strength per trial accepted (beyond it every weight is pushed to zero at once).
L1_MAX = 1e3


def check_device(device: str) -> torch.device:
    """``torch.device(device)``, or :class:`UsageError` if it is malformed or absent
    (:func:`neurowire.experiments.options.check_device`)."""
    try:
        return options.check_device(device)
    except options.DeviceError as err:
        raise UsageError(f"--device {err}") from None


# ---------------------------------------------------------------------- data
def load_data(cfg: ClassifyConfig) -> tuple[Any, Any, dict[str, Any]]:
    """``(train, test, info)``: two datasets of ``(spikes [T, n_in], label)`` samples.

    Raises ``FileNotFoundError`` (naming the path) when a dataset's files are missing.
    """
    from neurowire import data

    root = Path(cfg.data_dir)
    if cfg.dataset == "mnist1d":
        train, test = data.mnist1d()
    elif cfg.dataset == "patterns":
        train, test = data.frozen_poisson_patterns(
            n_classes=4, n_inputs=40, steps=60, n_train=64, n_test=32, seed=cfg.seed
        )
    elif cfg.dataset in ("shd", "ssc"):
        reader = data.shd if cfg.dataset == "shd" else data.ssc
        train = reader(root, split="train", dt=cfg.dt)
        test = reader(root, split="test", dt=cfg.dt, steps=train.steps)
    elif cfg.dataset == "dvs_gesture":
        train = data.dvs_gesture(root, train=True, dt=cfg.dt)
        test = data.dvs_gesture(root, train=False, dt=cfg.dt, steps=train.steps)
    else:
        train = data.nmnist(root, train=True, dt=cfg.dt)
        test = data.nmnist(root, train=False, dt=cfg.dt, steps=train.steps)
    info = {
        "name": cfg.dataset,
        "train_samples": len(train),
        "test_samples": len(test),
        "inputs": int(train.n_in),
        "classes": int(train.n_classes),
        "steps": int(train.steps),
    }
    return train, test, info


# ---------------------------------------------------------------------- network
def build(cfg: ClassifyConfig, configuration: str, info: dict[str, Any]) -> nw.EProp:
    """The network and trainer of one configuration (same seed, same initial statistics)."""
    n_in, n_hid, n_out = info["inputs"], cfg.hidden, info["classes"]
    net = nw.Network(dt=cfg.dt, seed=cfg.seed)
    inp = net.population("input", nw.SpikeSource(n_in))
    if cfg.model == "alif":
        model = nw.ALIF(n_hid, tau_m=20.0, tau_a=2000.0, beta=0.0174, v_th=0.6, tau_refrac=5.0)
    else:
        model = nw.LIF(n_hid, tau_m=20.0, v_th=0.61, tau_refrac=5.0)
    hid = net.population("hidden", model)
    out = net.population("output", nw.LeakyIntegrator(n_out, tau=20.0))
    w_in, w_rec = nw.Normal(0.0, n_in**-0.5), nw.Normal(0.0, n_hid**-0.5)
    if configuration == "dense":
        p_in = net.connect(inp, hid, nw.Dense(), weight=w_in, name="input")
        p_rec = net.connect(hid, hid, nw.Dense(), weight=w_rec, name="recurrent")
    else:
        pad = cfg.padding if configuration == "deep_r" else 1.0
        p_in = net.connect(
            inp,
            hid,
            nw.FixedProbability(cfg.input_density),
            weight=w_in,
            padding=pad,
            name="input",
        )
        p_rec = net.connect(
            hid,
            hid,
            nw.FixedProbability(cfg.recurrent_density),
            weight=w_rec,
            padding=pad,
            name="recurrent",
        )
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0.0, n_hid**-0.5), name="readout")
    rewiring = None
    if configuration == "deep_r":
        rewiring = {p: nw.DeepR(l1=cfg.l1, regrow=cfg.regrow) for p in (p_in, p_rec)}
    return nw.EProp(
        net,
        output=out,
        loss="sce",
        readout="sum",
        optimizer=nw.Adam(lr=cfg.lr),
        feedback="symmetric",
        regularization=nw.RateRegularizer(c=cfg.reg_strength, f_target_hz=cfg.reg_target_hz),
        rewiring=rewiring,
        method=cfg.method,
        seed=cfg.seed,
        device=cfg.device,
    )


def synapse_counts(trainer: nw.EProp) -> dict[str, int]:
    """Live synapses and allocated slots (padding included) over every projection."""
    live = slots = 0
    for proj in trainer.net.projections.values():
        if proj.sparse:
            live += proj.synapses.nnz
            slots += proj.synapses.n_pre * proj.synapses.capacity
        else:
            n = proj.weight.numel() - (proj.pre.n if proj.recurrent else 0)
            live += n
            slots += proj.weight.numel()
    return {"n_synapses": live, "n_slots": slots}


def snapshot(trainer: nw.EProp) -> dict[str, dict[str, Any]]:
    """Input and recurrent connectivity for the before/after histograms."""
    out = {}
    for name in ("input", "recurrent"):
        proj = trainer.net.projections[name]
        if proj.sparse:
            pre, post = proj.synapses.coo()
            w = proj.synapses.values("weight")
        else:
            full = torch.ones(proj.pre.n, proj.post.n, dtype=torch.bool)
            if proj.recurrent:
                full.fill_diagonal_(False)
            pre, post = full.nonzero(as_tuple=True)
            w = proj.weight.detach().cpu()[pre, post]
        out[name] = analysis.connectivity_snapshot(pre, post, w, proj.pre.n, proj.post.n)
    return out


# ---------------------------------------------------------------------- training
@dataclass
class Prepared:
    """One configuration ready to train: a fresh trainer, or one restored from its checkpoint,
    with its ``--lesion`` callback (None without one)."""

    name: str
    trainer: nw.EProp
    before: dict[str, dict[str, Any]]
    history: list[dict[str, Any]] = field(default_factory=list)
    start: int = 0
    lesion: Lesion | None = None


def lesion_callback(cfg: ClassifyConfig, test) -> Lesion | None:
    """The run's ``--lesion`` as a training callback (:func:`~.lesions.callback`: seeded by
    ``--seed``, measured on ``test``), or None without one."""
    if cfg.lesion_epoch is None:
        return None
    batch_size = max(cfg.batch_size, 64)
    return lesions.callback(cfg.lesion_epoch, cfg.lesion_fraction, cfg.seed, test, batch_size)


def prepare_configuration(
    cfg: ClassifyConfig,
    configuration: str,
    info: dict[str, Any],
    saved: dict[str, Any] | None,
    lesion: Lesion | None = None,
) -> Prepared:
    """Build one configuration's trainer and restore it and its ``lesion`` callback
    (:func:`lesion_callback`) from ``saved`` (its checked checkpoint payload,
    :func:`~neurowire.experiments.checkpoints.read_checkpoints`) if given."""
    trainer = build(cfg, configuration, info)
    if saved is None:
        return Prepared(configuration, trainer, snapshot(trainer), lesion=lesion)
    path = ckpt.checkpoint_path(cfg.out, configuration)
    start = Checkpointer(path).resume(trainer, saved)
    try:
        before = {k: _from_tensors(v) for k, v in saved["before"].items()}
        if lesion is not None:
            lesion.load_state_dict(saved["lesion"])
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
        why = options.one_line(err)
        raise CheckpointError(f"{str(path)!r} does not fit this network ({why})") from None
    return Prepared(configuration, trainer, before, list(saved["history"]), start, lesion)


class EpochReport(Callback):
    """Appends each epoch's entry of ``history`` (training metrics, test accuracy and loss,
    synapses rewired per projection, seconds in the rules), checks that all ranks agree, and
    advances the run's progress bar."""

    def __init__(self, cfg: ClassifyConfig, test, history: list[dict[str, Any]], bar) -> None:
        self.cfg, self.test, self.history, self.bar = cfg, test, history, bar
        self.calls_before: dict[str, int] = {}
        self.rules_before = 0.0

    def on_epoch_begin(self, epoch: int, trainer: nw.EProp) -> None:
        log = trainer.rewiring_log
        self.calls_before = {n: len(log.calls(n)["step"]) for n in trainer.rules}
        self.rules_before = trainer.timers["rules"]

    def on_epoch_end(self, epoch: int, m: dict[str, float], trainer: nw.EProp) -> None:
        ev = trainer.evaluate(self.test, batch_size=max(self.cfg.batch_size, 64))
        entry = {
            "epoch": epoch + 1,
            "loss": m["loss"],
            "accuracy_train": m["accuracy"],
            "accuracy_test": ev["accuracy"],
            "loss_test": ev["loss"],
            "time_s": m["time_s"],
            "rate_hz": m["spikes_per_neuron_per_s"],
            "rules_s": trainer.timers["rules"] - self.rules_before,
        }
        for name in trainer.rules:
            removed = trainer.rewiring_log.calls(name)["removed"][self.calls_before[name] :]
            entry[f"rewired_{name}"] = int(removed.sum())
        self.history.append(entry)
        distributed.check_consistent(trainer)
        self.bar.update(1)
        self.bar.set_postfix(train=f"{m['accuracy']:.3f}", test=f"{ev['accuracy']:.3f}")


def train_configuration(
    cfg: ClassifyConfig, run: Prepared, train, test, folder: RunFolder
) -> dict[str, Any]:
    """Train (or go on training) one prepared configuration, checkpointing every epoch;
    returns its summary entry."""
    configuration, trainer, history, before = run.name, run.trainer, run.history, run.before
    writer = trainer.rank == 0
    if run.start == 0 and l1sel.unresolved(trainer):
        l1sel.select_l1(
            trainer,
            train,
            grid=cfg.l1_grid,
            epochs=cfg.l1_epochs,
            validation_fraction=cfg.validation_fraction,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            progress=cfg.progress,
        )
    selection = trainer.l1_selection
    initial = synapse_counts(trainer)

    def note(path: Path, done: int) -> None:
        folder.last_checkpoint = f"{str(path)!r} ({configuration}, epoch {done})"

    def extra(done: int) -> dict[str, Any]:
        payload = {
            "configuration": configuration,
            "run": ckpt.run_settings(cfg),
            "history": history,
            "before": {k: _to_tensors(v) for k, v in before.items()},
        }
        if run.lesion is not None:
            payload["lesion"] = run.lesion.state_dict()
        return payload

    path = ckpt.checkpoint_path(folder.path, configuration)
    epochs = tqdm_epochs(cfg, configuration, run.start)
    callbacks = [  # the report measures before the cut, the checkpoint holds it
        EpochReport(cfg, test, history, epochs),
        *([run.lesion] if run.lesion is not None else []),
        Checkpointer(path, extra=extra, write=writer, on_save=note),
    ]
    for epoch in range(run.start, cfg.epochs):
        trainer.fit(
            train,
            epochs=epoch + 1,
            initial_epoch=epoch,
            callbacks=callbacks,
            progress=cfg.progress,
            batch_size=cfg.batch_size,
        )
    epochs.close()
    out = folder.path
    summary = _summarise(cfg, configuration, trainer, history, before, initial, train, out)
    if selection is not None:
        summary["l1"] = selection.chosen
        summary["l1_selection"] = selection.to_dict()
        if writer:
            analysis.plot_l1_selection(
                selection.to_dict(), out / f"l1_selection_{configuration}.png"
            )
    elif configuration == "deep_r":
        summary["l1"] = float(cfg.l1)
    if run.lesion is not None:
        summary["lesion"] = lesions.report(run.lesion, trainer, history)
    return summary


def _to_tensors(snap: dict[str, Any]) -> dict[str, Any]:
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in snap.items()}


def _from_tensors(snap: dict[str, Any]) -> dict[str, Any]:
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in snap.items()}


def tqdm_epochs(cfg: ClassifyConfig, configuration: str, start: int):
    from tqdm.auto import tqdm

    return tqdm(
        total=cfg.epochs,
        initial=start,
        desc=configuration,
        unit="epoch",
        disable=not cfg.progress or distributed.rank() != 0,
    )


def _summarise(cfg, configuration, trainer, history, before, initial, train, out) -> dict:
    final_train = trainer.evaluate(train, batch_size=max(cfg.batch_size, 64))
    last = history[-1] if history else {}
    times = [h["time_s"] for h in history]
    rewired = {}
    failed = 0
    nominal = {}
    for name in trainer.rules:
        calls = trainer.rewiring_log.calls(name)
        rewired[name] = float(calls["removed"].mean()) if calls["removed"].size else 0.0
        failed += int(calls["failed"].sum())
        nominal[name] = int(trainer.net.projections[name].synapses.nnz)
    train_s = sum(times)
    after = snapshot(trainer)
    if trainer.rank == 0:
        analysis.plot_connectivity_histograms(
            before, after, out / f"connectivity_{configuration}.png"
        )
    placement = None
    if rewired:
        placement = synapse_placement(cfg, trainer, before, after, train)
        if trainer.rank == 0:
            analysis.plot_synapse_placement(
                before["input"],
                after["input"],
                out / f"placement_{configuration}.png",
                **placement.pop("inputs"),
            )
    if rewired and trainer.rank == 0:
        analysis.plot_rewiring_proportion(
            {n: trainer.rewiring_log.calls(n) for n in rewired},
            nominal,
            out / f"rewiring_{configuration}.png",
        )
    return {
        "accuracy_test": last.get("accuracy_test", float("nan")),
        "accuracy_train": final_train["accuracy"],
        "accuracy_train_running": last.get("accuracy_train", float("nan")),
        "time_per_epoch_s": statistics.median(times) if times else float("nan"),
        "time_per_epoch_range_s": [min(times), max(times)] if times else [],
        "time_per_sample_ms": 1e3 * statistics.median(times) / len(train) if times else None,
        "rules_time_fraction": sum(h["rules_s"] for h in history) / train_s if train_s else 0.0,
        **initial,
        "rewirings_per_batch": sum(rewired.values()),
        "rewirings_per_batch_by_projection": rewired,
        "proportion_rewired_per_batch": {
            n: rewired[n] / nominal[n] if nominal[n] else 0.0 for n in rewired
        },
        "failed_placements": failed,
        "batches": trainer.step_count,
        "history": history,
        **({"placement": placement} if placement is not None else {}),
    }


#: Training samples whose hidden spikes give the hidden neurons' rates for the placement analysis.
PLACEMENT_SAMPLES = 512


def synapse_placement(
    cfg: ClassifyConfig, trainer: nw.EProp, before: dict, after: dict, train
) -> dict[str, Any]:
    """Where the rewired synapses went (:func:`neurowire.analysis.placement_report`): input
    synapses per channel against the channel's information about the label [bits] and its rate
    [Hz] over the training set; recurrent synapses per hidden neuron against its rate [Hz] on
    the first :data:`PLACEMENT_SAMPLES` training samples, after training. Returns the report's
    dict plus ``inputs``, the arrays the figure takes."""
    counts = analysis.trial_counts(train)
    information = analysis.channel_information(counts)
    rate = analysis.channel_rates(counts, dt=cfg.dt)
    sample = [train[i][0] for i in range(min(len(train), PLACEMENT_SAMPLES))]
    hidden = torch.cat(
        [
            trainer.hidden_spikes(torch.stack(sample[i : i + 128]))
            for i in range(0, len(sample), 128)
        ]
    )
    inputs = {
        "information": information,
        "rate": rate,
        "recurrent_before": before["recurrent"],
        "recurrent_after": after["recurrent"],
        "hidden_rate": analysis.channel_rates(hidden, dt=cfg.dt),
    }
    report = analysis.placement_report(before["input"], after["input"], **inputs).to_dict()
    return {**report, "inputs": inputs}


# ---------------------------------------------------------------------- reporting
def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
    }


def table(summary: dict[str, Any]) -> str:
    """The comparison table printed at the end of a run."""
    confs = summary["configurations"]
    dense_t = confs.get("dense", {}).get("time_per_epoch_s")
    head = (
        f"{'configuration':14s} {'test acc':>9s} {'train acc':>9s} {'s/epoch':>8s} "
        f"{'speed-up':>8s} {'synapses':>10s} {'slots':>10s} {'rewired/batch':>13s} "
        f"{'rule time':>9s} {'L1':>7s}"
    )
    lines = [head, "-" * len(head)]
    for name, c in confs.items():
        speed = f"{dense_t / c['time_per_epoch_s']:.2f}x" if dense_t else "-"
        rules = f"{100 * c['rules_time_fraction']:.1f}%" if "l1" in c else "-"
        l1 = f"{c['l1']:g}" if "l1" in c else "-"
        lines.append(
            f"{name:14s} {100 * c['accuracy_test']:8.2f}% {100 * c['accuracy_train']:8.2f}% "
            f"{c['time_per_epoch_s']:8.2f} {speed:>8s} {c['n_synapses']:10d} {c['n_slots']:10d} "
            f"{c['rewirings_per_batch']:13.1f} {rules:>9s} {l1:>7s}"
        )
    lines += lesions.table_lines(confs)
    chosen = [c["l1_selection"] for c in confs.values() if "l1_selection" in c]
    for sel in chosen:
        curve = ", ".join(
            f"{v:g}: {100 * a:.1f}%" for v, a in zip(sel["grid"], sel["val_accuracy"], strict=True)
        )
        lines.append(
            f"L1 chosen on {sel['n_validation']} held-out training samples "
            f"({sel['wall_s']:.0f} s): {curve}"
        )
    return "\n".join(lines)


#: What ``neurowire classify`` writes into ``--out`` (deleted by ``--overwrite``).
OUTPUTS = ("summary.json", "checkpoints", "*.png")


def run_folder(cfg: ClassifyConfig) -> RunFolder:
    """``--out`` as this run's :class:`~neurowire.experiments.outputs.RunFolder`."""
    return RunFolder(cfg.out, "classify", ckpt.run_settings(cfg), OUTPUTS)


def run(cfg: ClassifyConfig, folder: RunFolder | None = None) -> dict[str, Any]:
    """Check ``--out`` and the checkpoints to resume, load the data, then train every
    configuration and write the outputs; nothing is written before all checks have passed.

    ``folder``: ``cfg.out`` as returned by :func:`run_folder` and already checked
    (:meth:`~neurowire.experiments.outputs.RunFolder.check`); None: made and checked here. Its
    ``last_checkpoint`` names the newest checkpoint written, for an interrupted run.
    """
    if folder is None:
        folder = run_folder(cfg)
        folder.check(resume=cfg.resume, overwrite=cfg.overwrite, fresh=cfg.fresh)
    writer = distributed.rank() == 0
    try:
        saved = {}
        if cfg.resume:
            saved = ckpt.read_checkpoints(
                folder.path, cfg.configurations, folder.settings, cfg.epochs
            )
            if writer and folder.recorded() is not None:  # continuing, not starting
                for name in cfg.configurations:
                    if name not in saved:
                        warn(
                            "classify", f"no checkpoint of {name!r} yet: training it from the start"
                        )
        torch.manual_seed(cfg.seed)
        train, test, info = load_data(cfg)
        try:
            distributed.check_batches(train, cfg.batch_size, distributed.world_size())
        except ValueError as err:
            raise UsageError(f"--batch-size {cfg.batch_size}: {err}") from None
        prepared = [
            prepare_configuration(cfg, name, info, saved.get(name), lesion_callback(cfg, test))
            for name in cfg.configurations
        ]
    except BaseException:
        if writer:
            folder.abandon()
        raise
    if writer:
        folder.start(overwrite=cfg.overwrite)
    tic = time.perf_counter()
    results = {}
    for prep in prepared:
        results[prep.name] = train_configuration(cfg, prep, train, test, folder)
    summary = {
        "config": {k: v for k, v in asdict(cfg).items() if k != "progress"},
        "dataset": info,
        "machine": machine_info(),
        "distributed": {
            "world_size": distributed.world_size(),
            "backend": torch.distributed.get_backend() if distributed.is_active() else None,
        },
        "wall_s": time.perf_counter() - tic,
        "configurations": results,
    }
    if writer:
        folder.write_text("summary.json", json.dumps(summary, indent=2, default=float))
        analysis.plot_accuracy_history(
            {name: r["history"] for name, r in results.items()}, folder.path / "accuracy.png"
        )
        if cfg.lesion_epoch is not None:
            analysis.plot_lesion_accuracy(
                {name: [lesions.curve(r)] for name, r in results.items()},
                cfg.lesion_epoch,
                cfg.lesion_fraction,
                folder.path / "lesion.png",
            )
    return summary


# ---------------------------------------------------------------------- command line
_Parser = options.ArgumentParser  # errors: one clear line, exit status 2


def parser() -> argparse.ArgumentParser:
    d = ClassifyConfig
    p = _Parser(
        prog="neurowire classify",
        description=__doc__.split("\n")[0] + "...",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", default=d.dataset, choices=DATASETS, help="data set")
    p.add_argument("--data-dir", default=d.data_dir, help="folder holding the data set's files")
    p.add_argument("--hidden", type=int, default=d.hidden, help="hidden neurons")
    p.add_argument("--model", default=d.model, choices=MODELS, help="hidden neuron model")
    p.add_argument(
        "--input-density",
        type=float,
        default=d.input_density,
        help="connection probability input -> hidden (1 with --recurrent-density 1: dense)",
    )
    p.add_argument(
        "--recurrent-density",
        type=float,
        default=d.recurrent_density,
        help="connection probability hidden -> hidden",
    )
    p.add_argument(
        "--padding",
        type=float,
        default=d.padding,
        help="row capacity of rewired projections, times the expected maximum row",
    )
    p.add_argument("--deep-r", action="store_true", help="rewire with DEEP R (sparse only)")
    p.add_argument(
        "--l1",
        type=l1_arg,
        default=d.l1,
        help="DEEP R L1 strength per trial, or 'auto': chosen by a sweep over --l1-grid on a "
        "validation split of the training set (never the test set)",
    )
    p.add_argument(
        "--l1-grid",
        type=float,
        nargs="+",
        default=list(l1sel.L1_GRID),
        help="L1 values tried by --l1 auto",
    )
    p.add_argument(
        "--l1-epochs", type=int, default=d.l1_epochs, help="epochs per value of the L1 sweep"
    )
    p.add_argument(
        "--validation-fraction",
        type=float,
        default=d.validation_fraction,
        help="share of every class of the training set held out by the L1 sweep",
    )
    p.add_argument(
        "--regrow", default=d.regrow, choices=("pair", "row"), help="where DEEP R re-adds synapses"
    )
    p.add_argument(
        "--compare", action="store_true", help="train dense, static sparse and DEEP R side by side"
    )
    p.add_argument(
        "--configurations",
        nargs="+",
        choices=CONFIGURATIONS,
        default=None,
        help="train exactly these configurations (instead of --compare / --deep-r)",
    )
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training set")
    p.add_argument(
        "--lesion",
        type=lesion_arg,
        default=None,
        metavar="EPOCH:FRACTION",
        help="after epoch EPOCH, delete a random FRACTION of the hidden layer's input and "
        "recurrent synapses (each projection separately; DEEP R may regrow up to its original "
        "count, dense weights are held at zero) and train on to --epochs",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="trials per batch")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds data order, weights, rewiring")
    p.add_argument(
        "--device",
        default=d.device,
        type=options.device_arg,
        help=f"torch device: {options.DEVICE_FORMS}",
    )
    p.add_argument(
        "--method",
        default=d.method,
        choices=("factorized", "online"),
        help="e-prop gradient method",
    )
    p.add_argument("--dt", type=float, default=d.dt, help="time step [ms]")
    p.add_argument("--out", default=d.out, help="output directory")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoints (same settings required)",
    )
    p.add_argument(
        "--resume-or-start",
        action="store_true",
        help="as --resume, but start the run if --out holds none yet (for job scripts)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out: delete its summary, checkpoints and figures first",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error or Ctrl-C"
    )
    return p


def l1_arg(text: str) -> float | str:
    """``--l1``: ``auto`` or a number."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None


def lesion_arg(text: str) -> tuple[int, float]:
    """``--lesion``: ``EPOCH:FRACTION``, an integer and a number (their ranges are checked by
    :class:`ClassifyConfig`)."""
    epoch, colon, fraction = text.partition(":")
    try:
        if not colon:
            raise ValueError
        return int(epoch), float(fraction)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected EPOCH:FRACTION, an integer and a number such as 10:0.5, got {text!r}"
        ) from None


def config_from_args(argv: Sequence[str] | None) -> ClassifyConfig:
    args = parser().parse_args(argv)
    lesion_epoch, lesion_fraction = args.lesion or (None, None)
    try:
        return ClassifyConfig(
            dataset=args.dataset,
            data_dir=args.data_dir,
            hidden=args.hidden,
            model=args.model,
            input_density=args.input_density,
            recurrent_density=args.recurrent_density,
            padding=args.padding,
            deep_r=args.deep_r,
            compare=args.compare,
            l1=args.l1,
            l1_grid=args.l1_grid,
            l1_epochs=args.l1_epochs,
            validation_fraction=args.validation_fraction,
            regrow=args.regrow,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            device=args.device,
            method=args.method,
            dt=args.dt,
            out=args.out,
            resume=args.resume or args.resume_or_start,
            overwrite=args.overwrite,
            fresh=args.resume_or_start,
            progress=not args.no_progress,
            configurations=list(dict.fromkeys(args.configurations or [])),
            lesion_epoch=lesion_epoch,
            lesion_fraction=lesion_fraction,
        )
    except UsageError as err:
        parser().error(str(err))
        raise  # unreachable: error() exits


#: Errors caused by the user's input or environment: one line on stderr, exit status 2.
USER_ERRORS = (
    UsageError,
    OutputError,
    CheckpointError,
    ckpt.ResumeError,
    DataFileError,
    checks.ParameterError,
    ImportError,
    OSError,
)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run ``neurowire classify`` (one process, or one torchrun worker); returns the summary.

    A user-caused error prints one line and exits with status 2; Ctrl-C prints one line naming
    the last checkpoint and how to resume, and exits with status 130. ``--debug`` shows the
    traceback instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    cfg = config_from_args(argv)
    folder = run_folder(cfg)
    had_group = torch.distributed.is_available() and torch.distributed.is_initialized()
    where = ""
    try:
        # every rank checks --out before any rank can pass the rendezvous and write to it
        writer = distributed.launch_rank() == 0
        folder.check(resume=cfg.resume, overwrite=cfg.overwrite, fresh=cfg.fresh, create=writer)
        joined = distributed.init_process_group(cfg.device)
    except (ValueError, RuntimeError) as err:
        folder.abandon()
        options.fail("classify", err, debug)
    if joined:
        cfg.device = str(distributed.local_device(cfg.device))
        where = f" (rank {distributed.rank()})"
    try:
        summary = run(cfg, folder)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"neurowire classify: interrupted{where}; {_resume_hint(folder)}", file=sys.stderr)
        raise SystemExit(130) from None
    except USER_ERRORS as err:
        options.fail("classify", err, debug, where)
    finally:
        if joined and not had_group:
            torch.distributed.destroy_process_group()
    if writer:
        print(table(summary))
        print(f"outputs in {cfg.out}")
    return summary


def _resume_hint(folder: RunFolder) -> str:
    if folder.last_checkpoint is None:
        return (
            f"no checkpoint was written yet; run the same command with --resume to start "
            f"again in {str(folder.path)!r}"
            if (folder.path / "run.json").exists()
            else "nothing was written"
        )
    return (
        f"the last checkpoint is {folder.last_checkpoint}; run the same command with --resume "
        "to continue"
    )
