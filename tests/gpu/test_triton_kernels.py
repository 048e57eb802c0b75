"""The Triton kernels of :mod:`neurowire.gpu` equal their PyTorch references.

On CUDA when there is a device, else under the Triton interpreter on CPU tensors (conftest sets
``TRITON_INTERPRET=1``). The references always run on CPU copies. Exact equality throughout,
except delivery of non-dyadic weights, whose atomic sums may add in another order (stated
tolerance).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pytest
import torch

pytest.importorskip("triton")

import neurowire.gpu as gpu  # noqa: E402
from neurowire import plasticity, propagate  # noqa: E402
from neurowire.codegen import clip  # noqa: E402
from neurowire.events import SpikeEvents  # noqa: E402
from neurowire.gpu import compact, delivery, stdp  # noqa: E402
from neurowire.plasticity import STDP  # noqa: E402
from neurowire.store import RaggedSynapses  # noqa: E402

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")

pytestmark = pytest.mark.skipif(
    not gpu.available(torch.zeros(1, device=DEV), interpret=True),
    reason="needs CUDA or the Triton interpreter (TRITON_INTERPRET=1)",
)

DTYPES = [torch.float32, torch.float64]
SEEDS = [0, 1, 2]


@pytest.fixture
def triton_path(monkeypatch):
    """Route the library's dispatch to the Triton kernels for CPU tensors too (interpreter)."""
    monkeypatch.setattr(gpu, "available", partial(gpu.available, interpret=True))


def _dev(t: torch.Tensor) -> torch.Tensor:
    """A copy on the test device (never the same tensor, also on the CPU)."""
    return t.to(DEV, copy=True)


def _to_dev(ev: SpikeEvents) -> SpikeEvents:
    valid = None if ev.valid is None else _dev(ev.valid)
    return SpikeEvents(_dev(ev.row), _dev(ev.pre), ev.n_rows, ev.n, valid=valid)


def _events(z: torch.Tensor, padded: bool, gen: torch.Generator) -> SpikeEvents:
    """Events of ``z [R, n]``; padded: a budget with padding events and one real event
    switched off (``valid`` False)."""
    if not padded:
        return SpikeEvents.from_dense(z)
    ev = SpikeEvents.fixed(z, int(z.sum()) + 5)
    real = int(z.sum())
    if real:
        ev.valid[int(torch.randint(real, (1,), generator=gen))] = False
    return ev


def _slots(n_pre: int, n_post: int, cap: int, gen: torch.Generator, dtype: torch.dtype):
    """Ragged rows: ``post [n_pre, cap]`` (padding 0), ``weight`` (padding 0), ``length``; row 0
    full (the padding events' neuron), row 1 empty."""
    length = torch.randint(0, cap + 1, (n_pre,), generator=gen)
    length[0], length[1] = cap, 0
    live = torch.arange(cap)[None, :] < length[:, None]
    post = torch.where(live, torch.randint(0, n_post, (n_pre, cap), generator=gen), 0)
    weight = torch.randint(-8, 9, (n_pre, cap), generator=gen).to(dtype) / 8
    weight[0, 0] = 1.0
    return post, torch.where(live, weight, 0), length


# ---------------------------------------------------------------------- delivery
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padded", [False, True], ids=["dense", "fixed"])
@pytest.mark.parametrize("cap", [6, 150])
def test_deliver_slots_equals_reference(seed, dtype, padded, cap):
    gen = torch.Generator().manual_seed(seed)
    n_pre, n_post, rows, offset = 11, 9, 3, 2
    post, weight, _ = _slots(n_pre, n_post, cap, gen, dtype)
    post += offset  # global column indices into a wider out
    z = torch.rand(rows, n_pre, generator=gen) < 0.4
    z[0, 0] = z[1, 1] = True
    ev = _events(z, padded, gen)
    out = torch.randint(-4, 5, (rows, n_post + 3), generator=gen).to(dtype) / 4
    ref = out.clone()
    propagate.deliver_slots(ref, ev, post, weight)
    got = _dev(out)
    delivery.deliver_slots(got, _to_dev(ev), _dev(post), _dev(weight))
    assert torch.equal(got.cpu(), ref)  # dyadic weights: every order of addition is exact

    weight = torch.where(weight != 0, torch.randn(n_pre, cap, generator=gen, dtype=dtype), 0)
    ref = out.clone()
    propagate.deliver_slots(ref, ev, post, weight)
    got = _dev(out)
    delivery.deliver_slots(got, _to_dev(ev), _dev(post), _dev(weight))
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got.cpu(), ref, rtol=tol, atol=tol)


def test_deliver_slots_no_events_and_dispatch(triton_path, monkeypatch):
    gen = torch.Generator().manual_seed(3)
    post, weight, _ = _slots(5, 4, 3, gen, torch.float32)
    out = torch.zeros(2, 4, device=DEV)
    empty = SpikeEvents.from_dense(torch.zeros(2, 5, dtype=torch.bool, device=DEV))
    delivery.deliver_slots(out, empty, _dev(post), _dev(weight))
    assert not out.any()

    calls = []
    kernel = delivery.deliver_slots
    monkeypatch.setattr(delivery, "deliver_slots", lambda *a: calls.append(1) or kernel(*a))
    z = torch.ones(2, 5, dtype=torch.bool)
    with monkeypatch.context() as m:  # the reference, on the CPU
        m.setattr(gpu, "available", lambda t, interpret=False: False)
        ref = propagate.deliver_rows(SpikeEvents.from_dense(z), post, weight, weight != 0, 2, 4)
    got = propagate.deliver_rows(
        _to_dev(SpikeEvents.from_dense(z)),
        _dev(post),
        _dev(weight),
        _dev(weight) != 0,
        2,
        4,
    )
    assert calls == [1]
    assert torch.equal(got.cpu(), ref)


# ---------------------------------------------------------------------- STDP
@dataclass(frozen=True)
class MultiplicativeSTDP(STDP):
    """A rule with another formula: the kernels must follow its own methods."""

    def depress(self, c, w, x_post):
        return clip(w - c.a_minus * x_post * w, c.w_min, c.w_max)

    def potentiate(self, c, w, x_pre):
        return clip(w + c.a_plus * x_pre * (c.w_max - w), c.w_min, c.w_max)


@dataclass(frozen=True)
class SquareSTDP(STDP):
    """A rule outside what the Triton translation expresses (``**``)."""

    def depress(self, c, w, x_post):
        return clip(w - c.a_minus * x_post**2, c.w_min, c.w_max)


RULES = [
    STDP(),
    STDP(a_plus=0.08, a_minus=0.05, w_min=-0.05, w_max=0.15),
    MultiplicativeSTDP(a_minus=0.3, a_plus=0.2),
]


def _store(seed: int, dtype: torch.dtype):
    """A store with padding slots, an empty row and an empty column; weights, traces, spikes."""
    gen = torch.Generator().manual_seed(seed)
    n_pre, n_post = 12, 10
    pairs = torch.rand(n_pre, n_post, generator=gen) < 0.45
    pairs[1] = False
    pairs[:, 2] = False
    pairs[0, 0] = True
    store = RaggedSynapses(n_pre, n_post, n_post + 2)
    pre, post = pairs.nonzero().T
    store.add(pre, post)
    w = torch.where(store.live, torch.rand(n_pre, n_post + 2, generator=gen, dtype=dtype) * 0.2, 0)
    x_pre = torch.rand(n_pre, generator=gen, dtype=dtype) * 3
    x_post = torch.rand(n_post, generator=gen, dtype=dtype) * 3
    z_pre = torch.rand(1, n_pre, generator=gen) < 0.5
    z_post = torch.rand(1, n_post, generator=gen) < 0.5
    z_pre[0, 0] = z_post[0, 0] = True
    return store, w, x_pre, x_post, z_pre, z_post, gen


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", RULES, ids=["stdp", "stdp-wide", "multiplicative"])
def test_stdp_kernels_equal_reference(seed, dtype, rule):
    store, w, x_pre, x_post, z_pre, z_post, gen = _store(seed, dtype)
    assert stdp.supports(rule, 0.5)
    pre, post = _events(z_pre, True, gen), _events(z_post, True, gen)
    columns = store.padded_columns()

    ref = w.clone()
    plasticity.stdp_depress_rows(ref, store.ind, store.live, pre, x_post, rule, 0.5)
    got = _dev(w)
    args = (
        _dev(store.ind),
        _dev(store.live),
        _to_dev(pre),
        _dev(x_post),
        rule,
        0.5,
    )
    stdp.stdp_depress_rows(got, *args)
    assert torch.equal(got.cpu(), ref)
    assert not torch.equal(ref, w)  # something was depressed

    plasticity.stdp_potentiate_columns(ref, columns, post, x_pre, rule, 0.5)
    stdp.stdp_potentiate_columns(got, _dev(columns), _to_dev(post), _dev(x_pre), rule, 0.5)
    assert torch.equal(got.cpu(), ref)


def test_stdp_dispatch_and_fallback(triton_path, monkeypatch):
    """plasticity's functions route STDP to the kernels and a rule they cannot translate to the
    PyTorch path, with the same weights either way."""
    store, w, x_pre, x_post, z_pre, z_post, gen = _store(4, torch.float32)
    pre, post = _events(z_pre, True, gen), _events(z_post, True, gen)
    columns = store.padded_columns()
    calls = []
    for name in ("stdp_depress_rows", "stdp_potentiate_columns"):
        kernel = getattr(stdp, name)
        monkeypatch.setattr(stdp, name, lambda *a, k=kernel: calls.append(1) or k(*a))
    dev = (
        _dev(store.ind),
        _dev(store.live),
        _to_dev(pre),
        _to_dev(post),
        _dev(columns),
    )
    for rule, routed in ((STDP(), [1, 1]), (SquareSTDP(), [])):
        assert stdp.supports(rule) == bool(routed)
        with monkeypatch.context() as m:  # the reference, on the CPU
            m.setattr(gpu, "available", lambda t, interpret=False: False)
            ref = w.clone()
            plasticity.stdp_depress_rows(ref, store.ind, store.live, pre, x_post, rule)
            plasticity.stdp_potentiate_columns(ref, columns, post, x_pre, rule)
        calls.clear()
        got = _dev(w)
        plasticity.stdp_depress_rows(got, dev[0], dev[1], dev[2], _dev(x_post), rule)
        plasticity.stdp_potentiate_columns(got, dev[4], dev[3], _dev(x_pre), rule)
        assert calls == routed
        assert torch.equal(got.cpu(), ref)


# ---------------------------------------------------------------------- compaction
def _compaction_case(seed: int, dtype: torch.dtype):
    """A store with float, int, bool and batched variables and a removal mask: one row loses all
    its synapses, one row only padding slots are marked (untouched), one row is empty."""
    gen = torch.Generator().manual_seed(seed)
    n_pre, n_post, cap = 9, 13, 11
    pairs = torch.rand(n_pre, n_post, generator=gen) < 0.5
    pairs[0, :6] = pairs[1, :4] = True
    pairs[2] = False
    store = RaggedSynapses(n_pre, n_post, cap)
    store.native_ops = False  # the reference: the PyTorch path
    pre, post = pairs.nonzero().T
    store.add(pre, post)
    live = store.live
    store.add_var("weight", torch.randn(n_pre, cap, generator=gen, dtype=dtype), dtype=dtype)
    store.add_var("delay", torch.randint(1, 9, (n_pre, cap), generator=gen), dtype=torch.int32)
    store.add_var("plastic", torch.rand(n_pre, cap, generator=gen) < 0.5, dtype=torch.bool)
    trace = torch.randn(3, n_pre, cap, generator=gen, dtype=dtype)
    store.add_var("trace", trace, batched=3, dtype=dtype)
    mask = torch.rand(n_pre, cap, generator=gen) < 0.4
    mask[0] = True
    mask[1] = ~live[1]
    return store, mask


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_compaction_equals_reference(seed, dtype):
    store, mask = _compaction_case(seed, dtype)
    arrays = {"ind": store.ind, **store.vars}
    got = {k: _dev(v) for k, v in arrays.items()}
    length = _dev(store.row_length)
    removed = compact.remove(_dev(mask), length, list(got.values()))
    ref_removed = store.remove(mask)
    assert ref_removed[0] > 0 and ref_removed[1] == 0 and ref_removed[2] == 0
    assert torch.equal(removed.cpu(), ref_removed)
    assert torch.equal(length.cpu(), store.row_length)
    assert torch.equal(got.pop("ind").cpu(), store.ind)
    for name, value in got.items():
        assert torch.equal(value.cpu(), store.vars[name]), name


def test_compaction_nothing_removed_and_wide_rows():
    gen = torch.Generator().manual_seed(5)
    cap = 2100  # more than one block of slots per row
    length = torch.tensor([cap, 700, 0])
    data = torch.randn(3, cap, generator=gen)
    mask = torch.rand(3, cap, generator=gen) < 0.5
    none = compact.remove(torch.zeros(3, cap, dtype=torch.bool, device=DEV), _dev(length), [])
    assert not none.any()
    got, got_length = _dev(data), _dev(length)
    removed = compact.remove(_dev(mask), got_length, [got])
    for r in range(3):
        keep = ~mask[r, : length[r]]
        assert removed[r] == length[r] - keep.sum()
        expect = torch.zeros(cap)
        expect[: int(keep.sum())] = data[r, : length[r]][keep]
        if removed[r] > 0:
            assert torch.equal(got[r].cpu(), expect)
        else:
            assert torch.equal(got[r].cpu(), data[r])
    assert torch.equal(got_length.cpu(), length - removed.cpu())


def test_store_remove_moves_every_variable(triton_path, monkeypatch):
    """Through ``RaggedSynapses.remove`` on the Triton path: each variable encodes its synapse
    (``pre * 100 + post``), so after removal every slot must still hold its own synapse's."""
    gen = torch.Generator().manual_seed(7)
    n_pre, n_post, cap = 8, 20, 12
    pairs = torch.rand(n_pre, n_post, generator=gen) < 0.5
    pairs[0] = True
    store = RaggedSynapses(n_pre, n_post, cap, device=DEV)
    pre, post = pairs.nonzero().T
    store.add(_dev(pre), _dev(post), on_full="skip")
    code = (torch.arange(n_pre, device=DEV)[:, None] * 100 + store.ind).double()
    store.add_var("weight", code.float())
    store.add_var("delay", code, dtype=torch.float64)
    store.add_var("trace", code + 1e4 * torch.arange(2, device=DEV)[:, None, None], batched=2)
    before_pre, before_post = (t.cpu() for t in store.coo())
    mask = _dev(torch.rand(n_pre, cap, generator=gen) < 0.4)
    mask[0] = True

    calls = []
    kernel = compact.remove
    monkeypatch.setattr(compact, "remove", lambda *a: calls.append(1) or kernel(*a))
    version, length = store.version, store.row_length.cpu().clone()
    removed = store.remove(mask)
    assert calls == [1] and store.version > version and int(removed.sum()) > 0
    store.validate()
    live = store.live
    expect = (torch.arange(n_pre, device=DEV)[:, None] * 100 + store.ind).double()
    assert torch.equal(store.vars["weight"][live], expect.float()[live])
    assert torch.equal(store.vars["delay"][live], expect[live])
    for b in range(2):
        assert torch.equal(store.vars["trace"][b][live], (expect + 1e4 * b).float()[live])
        assert not store.vars["trace"][b][~live].any()  # freed tails zeroed
    after = {(int(i), int(j)) for i, j in zip(*(t.cpu() for t in store.coo()), strict=True)}
    gone = mask.cpu() & (torch.arange(cap)[None, :] < length[:, None])
    assert len(after) == len(before_pre) - int(gone.sum())
    assert after <= {(int(i), int(j)) for i, j in zip(before_pre, before_post, strict=True)}
