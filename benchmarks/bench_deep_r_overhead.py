"""DEEP R's own cost per call at the demo's size, inside real training.

Builds the ``neurowire classify`` demo trainer (mnist1d, 256 inputs -> 512 ALIF -> 10, 1 %
input and recurrent density, rows 2x, ``DeepR(l1=0.01)`` on both sparse projections, batch 32;
:func:`neurowire.experiments.classify.build`), trains it for ``--epochs`` and times every call
of the trainer's :class:`~neurowire.structural.runner.RuleRunner` with ``time.perf_counter``:
``update`` and ``adjust_gradient`` of rule 0 (input) and rule 1 (recurrent). Reported per hook
and rule: median, mean and 90th percentile microseconds per call, overall and per epoch (the
first epochs rewire most), plus the trainer's ``rules`` timer per batch and as a fraction of
its training time (``neurowire classify``'s ``rules_time_fraction``), and the load average
before and after (timings taken while other jobs share the cores are not results).

``--floor`` replaces both runner hooks by calls that do nothing: what remains of the ``rules``
timer is the trainer's own work around the rules.

Run (from the repository root; ~1 s per epoch on 2 idle cores)::

    .venv/bin/python benchmarks/bench_deep_r_overhead.py --epochs 5 > out.json
    .venv/bin/python benchmarks/bench_deep_r_overhead.py --epochs 3 --floor
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from typing import Any

from neurowire.experiments import classify
from neurowire.structural.runner import RuleRunner

BATCH = 32


def summary_us(seconds: list[float]) -> dict[str, float]:
    """Median, mean and 90th percentile [us] of per-call seconds."""
    us = sorted(1e6 * s for s in seconds)
    return {
        "calls": len(us),
        "median_us": round(statistics.median(us), 1),
        "mean_us": round(statistics.fmean(us), 1),
        "p90_us": round(us[int(0.9 * (len(us) - 1))], 1),
    }


def instrument(runner: RuleRunner, calls: dict[str, list[float]], floor: bool) -> None:
    """Record the seconds of every hook call into ``calls[hook + rule index]``; ``floor``:
    the hooks do nothing (``adjust_gradient`` returns the gradient)."""
    update, adjust = runner.update, runner.adjust_gradient

    def timed_update(i, clock, log_events=False):
        tic = time.perf_counter()
        if not floor:
            update(i, clock, log_events)
        calls[f"update{i}"].append(time.perf_counter() - tic)

    def timed_adjust(i, grad, clock):
        tic = time.perf_counter()
        out = grad if floor else adjust(i, grad, clock)
        calls[f"adjust_gradient{i}"].append(time.perf_counter() - tic)
        return out

    runner.update, runner.adjust_gradient = timed_update, timed_adjust


def run(epochs: int, seed: int, floor: bool) -> dict[str, Any]:
    """Train the demo trainer for ``epochs``; per-call timings of both hooks of both rules."""
    cfg = classify.ClassifyConfig(
        configurations=["deep_r"], l1=0.01, epochs=epochs, seed=seed, progress=False
    )
    train, _, info = classify.load_data(cfg)
    trainer = classify.build(cfg, "deep_r", info)
    calls: dict[str, list[float]] = defaultdict(list)
    instrument(trainer.rule_runner, calls, floor)
    load_before = os.getloadavg()
    per_epoch, train_s, rules_s, batches = [], 0.0, 0.0, 0
    for epoch in range(epochs):
        start = {k: len(v) for k, v in calls.items()}
        rules_before = trainer.timers["rules"]
        m = trainer.fit(
            train, epochs=epoch + 1, initial_epoch=epoch, progress=False, batch_size=BATCH
        )[-1]
        n = -(-int(m["trials"]) // BATCH)
        rules = trainer.timers["rules"] - rules_before
        train_s, rules_s, batches = train_s + m["time_s"], rules_s + rules, batches + n
        per_epoch.append(
            {
                "epoch": epoch + 1,
                "time_s": round(m["time_s"], 3),
                "rules_us_per_batch": round(1e6 * rules / n, 1),
                **{k: summary_us(v[start.get(k, 0) :]) for k, v in sorted(calls.items())},
            }
        )
    return {
        "config": {"epochs": epochs, "seed": seed, "l1": 0.01, "batch_size": BATCH},
        "floor": floor,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "rules_time_fraction": round(rules_s / train_s, 4),
        "rules_us_per_batch": round(1e6 * rules_s / batches, 1),
        **{k: summary_us(v) for k, v in sorted(calls.items())},
        "epochs": per_epoch,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--floor", action="store_true", help="hooks that do nothing")
    args = ap.parse_args()
    print(json.dumps(run(args.epochs, args.seed, args.floor), indent=1))


if __name__ == "__main__":
    main()
