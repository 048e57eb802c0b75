"""RuleRunner: one view per rule and projection, renewed for every call, whose neuron state
is the engine's at the call."""

from __future__ import annotations

import torch

import neurowire as nw
from neurowire.structural.log import RewiringLog
from neurowire.structural.runner import Clock, RuleRunner
from neurowire.structural.view import SynapseView


class Engine:
    """A ``make_view`` whose neuron state and clock change between calls; counts its calls."""

    def __init__(self):
        self.stores = {
            name: nw.RaggedSynapses.from_coo(4, 4, [0, 1, 2], [1, 2, 3], capacity=3, name=name)
            for name in ("a", "b")
        }
        self.rate, self.step, self.t = 0.0, 0, 0.0
        self.made = 0
        self.log = RewiringLog()

    def make_view(self, name, generator, log_events):
        self.made += 1
        return SynapseView(
            self.stores[name],
            pre_state={"rate_hz": torch.full((1, 4), self.rate)},
            post_state={},
            pre_grid=None,
            post_grid=None,
            log=self.log,
            step=self.step,
            t_ms=self.t,
            log_events=log_events,
            generator=generator,
        )


class Record(nw.StructuralRule):
    """Reads the state on odd calls, removes one synapse of its own projection and looks at
    the other one (and at its own through ``ctx.view``)."""

    def __init__(self):
        self.seen = []

    def update(self, view, ctx):
        state = view.pre_state["rate_hz"][0, 0].item() if ctx.step % 2 else None
        own, other = ctx.view("a"), ctx.view("b")
        self.seen.append((view, own, other, state, view.removed))
        mask = torch.zeros_like(view.live)
        mask[ctx.step % 3, 0] = True
        view.remove(mask)


def test_views_are_made_once_and_renewed_for_every_call():
    engine, rule = Engine(), Record()
    runner = RuleRunner([("a", rule)], 0, "cpu", engine.make_view, engine.log)
    for step in (1, 2, 3):
        engine.rate, engine.step, engine.t = 10.0 * step, step, float(step)
        runner.update(0, Clock(step, float(step), 1.0))
    (v1, own1, other1, s1, r1), (v2, own2, other2, s2, r2), (v3, *_, s3, r3) = rule.seen
    assert v1 is v2 is v3 and own1 is own2 and other1 is other2
    assert own1 is not v1  # ctx.view of its own projection: a view of its own, as before
    assert (s1, s2, s3) == (10.0, None, 30.0)  # the state of the call, read when asked for
    assert (r1, r2, r3) == (0, 0, 0)  # counts start at 0 in every call
    assert engine.log.calls("a")["removed"].tolist() == [1, 0] * 3  # its view, ctx.view("a")
    assert engine.log.calls("b")["removed"].tolist() == [0] * 3
    # three views made once, then one more per call that read the state (calls 1 and 3)
    assert engine.made == 3 + 1


def test_events_are_logged_at_the_time_of_each_call():
    engine = Engine()

    class RemoveFirst(nw.StructuralRule):
        def update(self, view, ctx):
            mask = torch.zeros_like(view.live)
            mask[ctx.step - 1, 0] = True
            view.remove(mask)

    runner = RuleRunner([("a", RemoveFirst())], 0, "cpu", engine.make_view, engine.log)
    for step in (1, 2):
        engine.step, engine.t = step, 0.5 * step
        runner.update(0, Clock(step, 0.5 * step, 0.5), log_events=True)
    events = engine.log.events("a")
    assert events["t_ms"].tolist() == [0.5, 1.0] and events["pre"].tolist() == [0, 1]
