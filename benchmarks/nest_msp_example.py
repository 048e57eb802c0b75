"""NEST 3.10's structural plasticity example (``pynest/examples/structural_plasticity.py``), run
in NEST with seeds as arguments: the reference for neurowire's homeostatic rewiring.

The network is the example's, parameter for parameter (Butz & van Ooyen 2013 rule):

* 800 excitatory and 200 inhibitory ``iaf_psc_alpha`` neurons with NEST's defaults (the
  example writes an ``iaf_psc_exp`` parameter set, ``model_params``, that it never applies), no
  initial connections;
* one ``poisson_generator`` at 10,000 Hz connected all-to-all to every neuron (each target gets
  its own independent train), weight 6.2 pA, delay 1.0 ms;
* structural synapses ``synapse_ex`` (static, 585 pA, 1.0 ms; ``Axon_ex`` -> ``Den_ex``) and
  ``synapse_in`` (static, -585 pA, 1.0 ms; ``Axon_in`` -> ``Den_in``);
* gaussian growth curves (``continuous=False``, ``eta = 0``): on excitatory neurons ``Den_ex``,
  ``Den_in`` and ``Axon_ex`` grow at 1e-4 elements/ms with ``eps = 0.05``; on inhibitory neurons
  ``Den_ex`` at 4e-4/ms, ``Den_in`` and ``Axon_in`` at 1e-4/ms, all with ``eps = 0.2``;
* resolution 0.1 ms, structural update every 10,000 ms, 200 s of model time simulated in
  chunks of 1,000 ms, after each of which the mean calcium of each population and the total
  connections are recorded (the example's ``record_ca`` and ``record_connectivity``).

Recorded per seed, after every chunk (time ``t_ms`` at its end): ``mean_ca_e``, ``mean_ca_i``,
``total_connections_e`` (sum of ``Axon_ex`` ``z_connected`` over excitatory neurons: the
excitatory synapses), ``total_connections_i`` (the same for ``Axon_in`` on inhibitory neurons),
and, read from the same synaptic-element dictionaries, the connections per pair of populations
(``Den_ex``/``Den_in`` ``z_connected`` summed over each postsynaptic population: ``e_to_e``,
``e_to_i``, ``i_to_e``, ``i_to_i``). Wall time: network construction, the simulation loop with
its recording (as the example runs it), and the time spent in ``nest.Simulate`` alone, with the
load averages before and after (NEST runs on one thread: other jobs on the machine slow it). At the
end, untimed: the synapses of each structural synapse model, with their autapses and multapses
(NEST's structural plasticity allows both by default). The kernel and model parameters NEST
reports are stored with the results.

Run with the interpreter that has NEST 3.10 (``pip install neurowire[nest]``)::

    python benchmarks/nest_msp_example.py --seeds 1 2 3
    python benchmarks/nest_msp_example.py --seeds 1 --t-sim 20000 --out /tmp/short.json

The JSON is rewritten after every seed, so finished seeds survive an interrupted run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

N_E = 800
N_I = 200
RESOLUTION_MS = 0.1
UPDATE_INTERVAL_MS = 10000.0
RECORD_INTERVAL_MS = 1000.0
T_SIM_MS = 200000.0
BG_RATE_HZ = 10000.0
W_E_PA = 585.0
W_I_PA = -585.0
W_EXT_PA = 6.2
DELAY_MS = 1.0


def growth_curve(rate_per_ms: float, eps: float) -> dict[str, Any]:
    """A gaussian growth curve as the example writes it (``eta = 0``, not continuous)."""
    return {
        "growth_curve": "gaussian",
        "growth_rate": rate_per_ms,
        "continuous": False,
        "eta": 0.0,
        "eps": eps,
    }


#: synaptic elements per population: excitatory neurons (E) and inhibitory neurons (I)
ELEMENTS = {
    "E": {
        "Den_ex": growth_curve(0.0001, 0.05),
        "Den_in": growth_curve(0.0001, 0.05),
        "Axon_ex": growth_curve(0.0001, 0.05),
    },
    "I": {
        "Den_ex": growth_curve(0.0004, 0.2),
        "Den_in": growth_curve(0.0001, 0.2),
        "Axon_in": growth_curve(0.0001, 0.2),
    },
}

NEURON_KEYS = (
    "C_m",
    "tau_m",
    "t_ref",
    "E_L",
    "V_reset",
    "V_th",
    "V_min",
    "V_m",
    "I_e",
    "tau_syn_ex",
    "tau_syn_in",
    "tau_Ca",
    "beta_Ca",
    "Ca",
)


def build(nest: Any, seed: int, threads: int) -> tuple[Any, Any]:
    """The example's kernel settings, synapse models, populations and Poisson drive."""
    nest.ResetKernel()
    nest.verbosity = nest.VerbosityLevel.ERROR
    nest.SetKernelStatus(
        {
            "resolution": RESOLUTION_MS,
            "rng_seed": seed,
            "local_num_threads": threads,
            "structural_plasticity_update_interval": UPDATE_INTERVAL_MS,
        }
    )
    nest.CopyModel("static_synapse", "synapse_ex")
    nest.SetDefaults("synapse_ex", {"weight": W_E_PA, "delay": DELAY_MS})
    nest.CopyModel("static_synapse", "synapse_in")
    nest.SetDefaults("synapse_in", {"weight": W_I_PA, "delay": DELAY_MS})
    nest.SetKernelStatus(
        {
            "structural_plasticity_synapses": {
                "synapse_ex": {
                    "synapse_model": "synapse_ex",
                    "post_synaptic_element": "Den_ex",
                    "pre_synaptic_element": "Axon_ex",
                },
                "synapse_in": {
                    "synapse_model": "synapse_in",
                    "post_synaptic_element": "Den_in",
                    "pre_synaptic_element": "Axon_in",
                },
            }
        }
    )
    nodes_e = nest.Create("iaf_psc_alpha", N_E, {"synaptic_elements": ELEMENTS["E"]})
    nodes_i = nest.Create("iaf_psc_alpha", N_I, {"synaptic_elements": ELEMENTS["I"]})
    noise = nest.Create("poisson_generator", params={"rate": BG_RATE_HZ})
    drive = {"weight": W_EXT_PA, "delay": DELAY_MS}
    nest.Connect(noise, nodes_e, "all_to_all", drive)
    nest.Connect(noise, nodes_i, "all_to_all", drive)
    return nodes_e, nodes_i


def connected(elements: Any, name: str) -> int:
    """Sum of ``z_connected`` of element ``name`` over a population's element dictionaries."""
    if isinstance(elements, dict):  # a population of one neuron
        elements = [elements]
    return int(sum(neuron[name]["z_connected"] for neuron in elements))


def run_seed(nest: Any, seed: int, t_sim_ms: float, threads: int) -> dict[str, Any]:
    """One run of the example; returns its recordings and timings."""
    import numpy as np

    tic = time.perf_counter()
    nodes_e, nodes_i = build(nest, seed, threads)
    build_s = time.perf_counter() - tic
    nest.EnableStructuralPlasticity()
    rec: dict[str, list] = {
        k: []
        for k in (
            "t_ms",
            "mean_ca_e",
            "mean_ca_i",
            "total_connections_e",
            "total_connections_i",
            "e_to_e",
            "e_to_i",
            "i_to_e",
            "i_to_i",
        )
    }
    simulate_s = 0.0
    chunks = int(round(t_sim_ms / RECORD_INTERVAL_MS))
    tic = time.perf_counter()
    for chunk in range(chunks):
        t0 = time.perf_counter()
        nest.Simulate(RECORD_INTERVAL_MS)
        simulate_s += time.perf_counter() - t0
        rec["t_ms"].append((chunk + 1) * RECORD_INTERVAL_MS)
        rec["mean_ca_e"].append(float(np.mean(nodes_e.Ca)))
        rec["mean_ca_i"].append(float(np.mean(nodes_i.Ca)))
        elems_e, elems_i = nodes_e.synaptic_elements, nodes_i.synaptic_elements
        rec["total_connections_e"].append(connected(elems_e, "Axon_ex"))
        rec["total_connections_i"].append(connected(elems_i, "Axon_in"))
        rec["e_to_e"].append(connected(elems_e, "Den_ex"))
        rec["e_to_i"].append(connected(elems_i, "Den_ex"))
        rec["i_to_e"].append(connected(elems_e, "Den_in"))
        rec["i_to_i"].append(connected(elems_i, "Den_in"))
        if (chunk + 1) % 20 == 0:
            print(
                f"seed {seed}: {rec['t_ms'][-1] / 1000:.0f} s, Ca E {rec['mean_ca_e'][-1]:.4f} "
                f"I {rec['mean_ca_i'][-1]:.4f}, connections E {rec['total_connections_e'][-1]} "
                f"I {rec['total_connections_i'][-1]}, {time.perf_counter() - tic:.0f} s wall",
                file=sys.stderr,
            )
    loop_s = time.perf_counter() - tic
    final = {name: final_synapses(nest, name) for name in ("synapse_ex", "synapse_in")}
    return {
        "seed": seed,
        "t_sim_ms": t_sim_ms,
        "build_s": build_s,
        "loop_s": loop_s,
        "simulate_s": simulate_s,
        "wall_s": build_s + loop_s,
        "real_time_factor": loop_s / (t_sim_ms / 1000.0),
        "final_synapses": final,
        "recordings": rec,
    }


def final_synapses(nest: Any, model: str) -> dict[str, int]:
    """Synapses of a structural synapse model at the end: all, autapses (source = target) and
    multapses (synapses beyond the first between the same pair)."""
    conns = nest.GetConnections(synapse_model=model)
    if len(conns) == 0:
        return {"synapses": 0, "autapses": 0, "multapses": 0}
    pairs = list(zip(conns.get("source"), conns.get("target"), strict=True))
    return {
        "synapses": len(pairs),
        "autapses": sum(1 for pre, post in pairs if pre == post),
        "multapses": len(pairs) - len(set(pairs)),
    }


def nest_parameters(nest: Any) -> dict[str, Any]:
    """The neuron, generator and kernel parameters NEST reports (after a run's build)."""
    neuron = nest.GetDefaults("iaf_psc_alpha")
    kernel_keys = (
        "resolution",
        "structural_plasticity_update_interval",
        "local_num_threads",
        "rng_type",
        "min_delay",
        "max_delay",
    )
    return {
        "iaf_psc_alpha": {k: _plain(neuron[k]) for k in NEURON_KEYS},
        "kernel": {k: _plain(nest.GetKernelStatus(k)) for k in kernel_keys},
        "synapse_ex": {k: _plain(nest.GetDefaults("synapse_ex")[k]) for k in ("weight", "delay")},
        "synapse_in": {k: _plain(nest.GetDefaults("synapse_in")[k]) for k in ("weight", "delay")},
    }


def _plain(value: Any) -> Any:
    """A JSON-friendly copy (numpy scalars to Python, infinities to strings)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return str(value)
    return value


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--t-sim", type=float, default=T_SIM_MS, help="model time [ms]")
    ap.add_argument("--threads", type=int, default=1, help="NEST threads (the example: 1)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.t_sim <= 0 or args.t_sim % RECORD_INTERVAL_MS:
        ap.error(
            f"--t-sim must be a positive multiple of {RECORD_INTERVAL_MS} ms, got {args.t_sim}"
        )
    if any(s < 1 for s in args.seeds):
        ap.error(f"--seeds must be >= 1 (NEST's rng_seed), got {args.seeds}")
    out = args.out or (
        Path(__file__).resolve().parent / "results" / f"msp_nest_{len(args.seeds)}seeds.json"
    )
    import nest

    result: dict[str, Any] = {
        "benchmark": "nest_msp_example",
        "example": "pynest/examples/structural_plasticity.py (NEST 3.10)",
        "nest_version": nest.__version__,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "config": {
            "n_e": N_E,
            "n_i": N_I,
            "neuron_model": "iaf_psc_alpha (NEST defaults)",
            "resolution_ms": RESOLUTION_MS,
            "update_interval_ms": UPDATE_INTERVAL_MS,
            "record_interval_ms": RECORD_INTERVAL_MS,
            "t_sim_ms": args.t_sim,
            "bg_rate_hz": BG_RATE_HZ,
            "w_ext_pa": W_EXT_PA,
            "w_e_pa": W_E_PA,
            "w_i_pa": W_I_PA,
            "delay_ms": DELAY_MS,
            "synaptic_elements": ELEMENTS,
        },
        "runs": [],
    }
    for seed in args.seeds:
        load_before = machine()["load_average"]
        run = run_seed(nest, seed, args.t_sim, args.threads)
        run["load_average_before"], run["load_average_after"] = (
            load_before,
            machine()["load_average"],
        )
        if "nest_parameters" not in result:
            result["nest_parameters"] = nest_parameters(nest)
        result["runs"].append(run)
        result["machine"]["load_average_end"] = machine()["load_average"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        rec = run["recordings"]
        print(
            f"seed {seed}: {run['wall_s']:.1f} s wall ({run['simulate_s']:.1f} s in Simulate), "
            f"final Ca E {rec['mean_ca_e'][-1]:.4f} I {rec['mean_ca_i'][-1]:.4f}, connections "
            f"E {rec['total_connections_e'][-1]} I {rec['total_connections_i'][-1]} -> {out}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
