"""One ``iaf_psc_alpha`` neuron in NEST and in neurowire (``nw.IafPsc`` + ``nw.Alpha``), driven
by the same excitatory and inhibitory input spikes: the largest membrane-potential difference
and whether the output spikes coincide.

Configurations (resolution 0.1 ms, 500 ms, random input spike trains drawn once from a seeded
generator, every spike on the time grid):

* ``defaults``: NEST's default neuron with a constant current ``I_e`` = 200 pA, excitatory
  spikes at 150 Hz of 585 pA and inhibitory ones at 60 Hz of -585 pA (the weights of NEST's
  structural plasticity example);
* ``unequal_tau``: ``tau_syn_ex`` = 0.5 ms, ``tau_syn_in`` = 5 ms, other parameters changed from
  the defaults (``C_m``, ``E_L``, ``V_reset``, ``V_th``, ``I_e``);
* ``singular``: ``tau_syn_ex`` = ``tau_m`` = 10 ms (the propagators' singular limit),
  ``t_ref`` = 0.12 ms (NEST rounds it up to 2 steps) and a lower bound ``V_min``.

Timing: NEST connects each ``spike_generator`` with the minimal delay (one step), so a spike
stamped ``t_s`` reaches the neuron in the step that ends at ``t_s + dt``; neurowire's
``SpikeSource`` spike in step ``k`` is delivered in step ``k + 1``, so ``k = t_s / dt - 1``, and
neurowire's step ``t`` is NEST's state at ``(t + 1) dt`` (multimeter and spike times).

NEST runs in a second interpreter (``--nest-python``, default ``$NEST_PYTHON``, else this one),
which this script calls with ``--nest-side``; neurowire runs here on the torch and the native
engine in float64. Writes ``benchmarks/results/check_iaf_psc_alpha_nest.json``; exits 1 if a
difference exceeds ``--tol`` (1e-9 mV) or the spikes differ.

Run (from the repository root)::

    export NEST_PYTHON=/path/to/python-with-nest    # an interpreter where `import nest` works
    PYTHONPATH=src python benchmarks/check_iaf_psc_alpha_nest.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

DT = 0.1
T_MS = 500.0

CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {
        "neuron": {"I_e": 200.0},
        "rate_ex_hz": 150.0,
        "rate_in_hz": 60.0,
        "w_ex": 585.0,
        "w_in": -585.0,
    },
    "unequal_tau": {
        "neuron": {
            "tau_syn_ex": 0.5,
            "tau_syn_in": 5.0,
            "C_m": 180.0,
            "E_L": -65.0,
            "V_reset": -68.0,
            "V_th": -52.0,
            "I_e": 150.0,
        },
        "rate_ex_hz": 300.0,
        "rate_in_hz": 80.0,
        "w_ex": 900.0,
        "w_in": -300.0,
    },
    "singular": {
        "neuron": {
            "tau_syn_ex": 10.0,
            "tau_syn_in": 1.0,
            "tau_m": 10.0,
            "t_ref": 0.12,
            "V_min": -71.0,
            "I_e": 100.0,
        },
        "rate_ex_hz": 100.0,
        "rate_in_hz": 100.0,
        "w_ex": 300.0,
        "w_in": -900.0,
    },
}

#: NEST parameter -> IafPsc argument
NAMES = {
    "C_m": "c_m",
    "tau_m": "tau_m",
    "t_ref": "t_ref",
    "E_L": "e_l",
    "V_reset": "v_reset",
    "V_th": "v_th",
    "V_min": "v_min",
    "I_e": "i_e",
}


def input_steps(rate_hz: float, seed: int) -> list[int]:
    """Steps ``k`` (0-based) holding an input spike: Bernoulli(rate dt) per step, none in the
    last step (its delivery would fall after the run)."""
    import numpy as np

    steps = int(round(T_MS / DT))
    rng = np.random.default_rng(seed)
    hits = rng.random(steps - 1) < rate_hz * DT * 1e-3
    return [int(k) for k in np.flatnonzero(hits)]


def nest_side(path: Path) -> None:
    """Read ``{config name: spec}`` from stdin, run each in NEST, write the traces as JSON to
    ``path`` (NEST prints its banner to stdout)."""
    import nest

    specs = json.load(sys.stdin)
    result: dict[str, Any] = {"nest_version": nest.__version__, "runs": {}}
    for name, spec in specs.items():
        nest.ResetKernel()
        nest.verbosity = nest.VerbosityLevel.ERROR
        nest.resolution = DT
        neuron = nest.Create("iaf_psc_alpha", params=spec["neuron"])
        meter = nest.Create("multimeter", params={"record_from": ["V_m"], "interval": DT})
        spikes = nest.Create("spike_recorder")
        for kind in ("ex", "in"):
            times = [round((k + 1) * DT, 10) for k in spec[f"steps_{kind}"]]
            gen = nest.Create("spike_generator", params={"spike_times": times})
            nest.Connect(gen, neuron, syn_spec={"weight": spec[f"w_{kind}"], "delay": DT})
        nest.Connect(meter, neuron)
        nest.Connect(neuron, spikes)
        nest.Simulate(T_MS)
        events = meter.get("events")
        order = sorted(range(len(events["times"])), key=lambda i: events["times"][i])
        result["runs"][name] = {
            "times_ms": [float(events["times"][i]) for i in order],
            "v_m": [float(events["V_m"][i]) for i in order],
            "spike_times_ms": sorted(float(t) for t in spikes.get("events")["times"]),
        }
    path.write_text(json.dumps(result))


def neurowire_run(spec: dict[str, Any], engine: str) -> tuple[list[float], list[int]]:
    """V [mV] after every step and the spike steps of neurowire's neuron."""
    import torch

    import neurowire as nw

    steps = int(round(T_MS / DT))
    params = spec["neuron"]
    kwargs = {NAMES[k]: v for k, v in params.items() if k in NAMES}
    net = nw.Network(dt=DT, seed=0, dtype=torch.float64)
    neuron = net.population("neuron", nw.IafPsc(1, **kwargs))
    inputs = {}
    for kind in ("ex", "in"):
        src = net.population(kind, nw.SpikeSource(1))
        tau = params.get(f"tau_syn_{kind}", 2.0)
        net.connect(src, neuron, nw.AllToAll(), weight=spec[f"w_{kind}"], psc=nw.Alpha(tau))
        train = torch.zeros(1, steps, 1, dtype=torch.bool)
        train[0, spec[f"steps_{kind}"], 0] = True
        inputs[kind] = train
    sim = nw.Simulator(net, engine=engine)
    result = sim.run(steps, record={"neuron": ["v", "spikes"]}, inputs=inputs)
    v = result["neuron"]["v"][0, :, 0].tolist()
    spikes = torch.nonzero(result["neuron"]["spikes"][0, :, 0]).flatten().tolist()
    return v, spikes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nest-side", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--nest-python", default=os.environ.get("NEST_PYTHON", sys.executable))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tol", type=float, default=1e-9, help="largest |dV| accepted [mV]")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.nest_side is not None:
        nest_side(args.nest_side)
        return 0
    specs = {}
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        specs[name] = {
            "neuron": cfg["neuron"],
            "w_ex": cfg["w_ex"],
            "w_in": cfg["w_in"],
            "steps_ex": input_steps(cfg["rate_ex_hz"], args.seed * 100 + 2 * i),
            "steps_in": input_steps(cfg["rate_in_hz"], args.seed * 100 + 2 * i + 1),
        }
    with tempfile.TemporaryDirectory() as tmp:
        traces = Path(tmp) / "nest.json"
        proc = subprocess.run(
            [args.nest_python, str(Path(__file__).resolve()), "--nest-side", str(traces)],
            input=json.dumps(specs),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            print(f"NEST run failed (exit {proc.returncode}) with {args.nest_python}")
            return 2
        nest = json.loads(traces.read_text())
    report: dict[str, Any] = {
        "check": "iaf_psc_alpha, NEST vs neurowire",
        "nest_version": nest["nest_version"],
        "dt_ms": DT,
        "t_ms": T_MS,
        "seed": args.seed,
        "tolerance_mv": args.tol,
        "configs": {},
    }
    ok = True
    for name, spec in specs.items():
        ref = nest["runs"][name]
        n = len(ref["v_m"])
        expected_times = [round((t + 1) * DT, 10) for t in range(n)]
        aligned = [round(t, 10) for t in ref["times_ms"]] == expected_times
        ref_spikes = [int(round(t / DT)) - 1 for t in ref["spike_times_ms"]]
        entry: dict[str, Any] = {
            **CONFIGS[name],
            "input_spikes": {"ex": len(spec["steps_ex"]), "in": len(spec["steps_in"])},
            "nest_spikes": len(ref_spikes),
            "nest_v_range_mv": [min(ref["v_m"]), max(ref["v_m"])],
            "multimeter_on_grid": aligned,
        }
        for engine in ("torch", "native"):
            v, spikes = neurowire_run(spec, engine)
            diff = max(abs(a - b) for a, b in zip(v[:n], ref["v_m"], strict=True))
            same = spikes == ref_spikes
            entry[engine] = {"max_abs_dv_mv": diff, "spikes": len(spikes), "spikes_equal": same}
            ok = ok and aligned and same and diff <= args.tol
            print(
                f"{name:12s} {engine:6s}: max |dV| = {diff:.3e} mV, spikes {len(spikes)} "
                f"(NEST {len(ref_spikes)}, {'equal' if same else 'DIFFERENT'})"
            )
        report["configs"][name] = entry
    report["passed"] = ok
    out = args.out or Path(__file__).resolve().parent / "results" / "check_iaf_psc_alpha_nest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{'passed' if ok else 'FAILED'} -> {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
