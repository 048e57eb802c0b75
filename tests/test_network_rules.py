"""A network an engine was built on is frozen: no rules, populations or projections after."""

from __future__ import annotations

import pytest

import neurowire as nw

BOUND = (
    r"network is bound to a Simulator built earlier; add {} before building it, or build a "
    r"new Simulator"
)


class Noop(nw.StructuralRule):
    def update(self, view, ctx):
        pass


def net():
    n = nw.Network(seed=0)
    a = n.population("a", nw.PoissonSource(9, rate_hz=100.0, grid=(3, 3)))
    b = n.population("b", nw.LIF(9, grid=(3, 3)))
    proj = n.connect(a, b, nw.FixedProbability(0.5), weight=0.1, padding=2.0)
    return n, proj


def test_rules_can_be_added_before_binding():
    n, proj = net()
    scheduled = n.add_rule(Noop(), proj, every=5)
    assert n.rules == [scheduled]


def test_add_rule_after_bind_raises_and_changes_nothing():
    n, proj = net()
    n.add_rule(Noop(), proj, every=5)
    rules = list(n.rules)
    n._bind("Simulator")
    with pytest.raises(RuntimeError, match=BOUND.format("rules")):
        n.add_rule(Noop(), proj, every=5)
    assert n.rules == rules


def test_connect_and_population_after_bind_raise():
    n, _ = net()
    n._bind("Simulator")
    with pytest.raises(RuntimeError, match=BOUND.format("projections")):
        n.connect("a", "a", nw.FixedProbability(0.1), weight=0.1, name="a->a")
    with pytest.raises(RuntimeError, match=BOUND.format("populations")):
        n.population("c", nw.LIF(3))
    assert set(n.projections) == {"a->b"} and set(n.populations) == {"a", "b"}


def test_the_message_names_the_first_engine_and_callbacks_stay_allowed():
    n, proj = net()
    n._bind("EProp")
    n._bind("Simulator")
    with pytest.raises(RuntimeError, match="bound to a EProp built earlier.*a new EProp"):
        n.add_rule(Noop(), proj)
    n.add_callback(lambda sim: None, every=10)
    assert len(n.callbacks) == 1
