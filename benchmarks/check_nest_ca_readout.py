"""Which calcium NEST 3.10 reports after a ``Simulate`` call: the value decayed to the time of
the readout, or the value at the neuron's last spike.

One ``iaf_psc_alpha`` neuron with synaptic elements (the example's gaussian curve), structural
plasticity enabled, driven to spike by a ``spike_generator`` at 10 ms and 1,500 ms through a
strong synapse; ``Simulate(1000)`` three times, reading ``Ca`` after each. The spikes are
recorded, and the readout compared with both candidates computed from them
(``sum beta_Ca exp(-(t - t_spike) / tau_Ca)`` up to ``t``, the readout time or the last spike).
NEST updates every neuron's calcium and elements at the end of each ``Simulate``, so the readout
is the first: ``neurowire msp`` reads its calcium at the end of each chunk for that reason.

Run with the interpreter that has NEST 3.10::

    python benchmarks/check_nest_ca_readout.py    # writes results/check_nest_ca_readout.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

TAU_CA_MS = 10000.0
BETA_CA = 0.001
CHUNK_MS = 1000.0
CHUNKS = 3


def calcium(spikes: list[float], t_ms: float) -> float:
    """Calcium at ``t_ms`` from the spikes up to it, each adding ``BETA_CA`` and decaying."""
    return sum(BETA_CA * math.exp(-(t_ms - s) / TAU_CA_MS) for s in spikes if s <= t_ms)


def main() -> int:
    import nest

    nest.ResetKernel()
    nest.verbosity = nest.VerbosityLevel.ERROR
    nest.SetKernelStatus({"resolution": 0.1, "structural_plasticity_update_interval": 10000.0})
    curve = {"growth_curve": "gaussian", "growth_rate": 1e-4, "continuous": False}
    curve |= {"eta": 0.0, "eps": 0.05}
    neuron = nest.Create(
        "iaf_psc_alpha", 1, {"synaptic_elements": {"Den_ex": curve, "Axon_ex": curve}}
    )
    drive = nest.Create("spike_generator", params={"spike_times": [10.0, 1500.0]})
    recorder = nest.Create("spike_recorder")
    nest.Connect(drive, neuron, syn_spec={"weight": 3000.0})
    nest.Connect(neuron, recorder)
    nest.EnableStructuralPlasticity()
    reads = []
    for _ in range(CHUNKS):
        nest.Simulate(CHUNK_MS)
        t = float(nest.GetKernelStatus("biological_time"))
        spikes = [float(s) for s in recorder.get("events")["times"]]
        reads.append(
            {
                "t_ms": t,
                "spikes_ms": spikes,
                "ca_read": float(neuron.Ca),
                "ca_decayed_to_read_time": calcium(spikes, t),
                "ca_at_last_spike": calcium(spikes, spikes[-1]),
            }
        )
    decayed = all(
        math.isclose(r["ca_read"], r["ca_decayed_to_read_time"], rel_tol=1e-12) for r in reads
    )
    result = {
        "check": "check_nest_ca_readout",
        "nest_version": nest.__version__,
        "reads": reads,
        "readout_is_decayed_to_read_time": decayed,
    }
    out = Path(__file__).resolve().parent / "results" / "check_nest_ca_readout.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    for r in reads:
        print(
            f"t {r['t_ms']:6.0f} ms: Ca read {r['ca_read']:.10f}, decayed to t "
            f"{r['ca_decayed_to_read_time']:.10f}, at last spike {r['ca_at_last_spike']:.10f}"
        )
    print(f"readout decayed to the read time: {decayed} -> {out}")
    return 0 if decayed else 1


if __name__ == "__main__":
    sys.exit(main())
