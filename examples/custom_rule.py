"""A user-written structural rule with its own per-synapse variable.

``RandomTurnover`` keeps an ``age`` per synapse (a store variable, so it moves with removals and
additions), removes each synapse older than ``min_age_ms`` with probability ``p_remove`` per call,
and re-adds as many synapses per row at explicit random targets, one of the three ways a rule can
add (``add`` explicit pairs, ``grow`` uniform free targets, or both).

Run:  python examples/custom_rule.py [--tiny]
"""

import argparse

import torch

import neurowire as nw


class RandomTurnover(nw.StructuralRule):
    def __init__(self, p_remove: float, min_age_ms: float, w_new: float) -> None:
        self.p_remove, self.min_age_ms, self.w_new = p_remove, min_age_ms, w_new
        self._last_t = 0.0

    def setup(self, s: nw.SynapseView, ctx: nw.RuleContext) -> None:
        s.store.add_var("age", init=0.0)  # [n_pre, capacity]; new synapses start at 0

    def update(self, s: nw.SynapseView, ctx: nw.RuleContext) -> None:
        s["age"].add_(ctx.t - self._last_t)  # in place: tell the store its values changed
        s.store.values_changed()
        self._last_t = ctx.t
        draw = torch.rand(s.live.shape, generator=ctx.generator, device=s.live.device)
        old = s["age"] >= self.min_age_ms
        removed = s.remove(old & (draw < self.p_remove))  # int [n_pre]
        pre = torch.repeat_interleave(torch.arange(s.n_pre, device=removed.device), removed)
        post = torch.randint(s.n_post, pre.shape, generator=ctx.generator, device=pre.device)
        # a target already connected, or a full row, is skipped and counted
        s.add(pre, post, on_full="skip", on_duplicate="skip", weight=self.w_new)

    def state_dict(self) -> dict:
        return {"last_t": self._last_t}

    def load_state_dict(self, state: dict) -> None:
        self._last_t = float(state["last_t"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds of wall time")
    args = parser.parse_args()
    n, steps = (64, 500) if args.tiny else (512, 20_000)

    net = nw.Network(dt=0.1, seed=1)
    src = net.population("src", nw.PoissonSource(n, rate_hz=10.0))
    tgt = net.population("tgt", nw.LIF.biophysical(n))
    proj = net.connect(
        src, tgt, nw.FixedProbability(0.1), weight=2.0, psc=nw.ExpCurr(tau=5.0), padding=2.0
    )
    net.add_rule(
        RandomTurnover(p_remove=0.05, min_age_ms=5.0, w_new=2.0), proj, every=10, log_events=True
    )
    sim = nw.Simulator(net)
    nnz_before = proj.synapses.nnz
    sim.run(steps)

    calls = sim.rewiring_log.calls(proj.name)  # per call: step, t_ms, removed, added, failed
    events = sim.rewiring_log.events(proj.name)  # every formation and elimination
    print(f"{len(calls['step'])} rule calls, totals {sim.rewiring_log.totals(proj.name)}")
    print(f"{len(events['pre'])} events logged; synapses {nnz_before} -> {proj.synapses.nnz}")
    age = proj.synapses.values("age")  # [nnz] in coo() order
    print(f"mean synapse age {age.mean().item():.1f} ms after {steps * net.dt:.0f} ms")


if __name__ == "__main__":
    main()
