"""The numba engine of factorised e-prop equals the PyTorch engine, kernel by kernel and whole."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from eprop_testnets import make_network, max_rel_error, random_input

from neurowire.events import SpikeEvents
from neurowire.learning import EProp, RateRegularizer, gradient_pass
from neurowire.learning.compiled import compile_network
from neurowire.learning.factorized import membrane_adjoint_, recurrent_events, spike_products
from neurowire.learning.forward import (
    gather_weights,
    hidden_events,
    input_currents,
    input_events,
    leaky_scan_,
    pseudo_derivative_,
    simulate,
)
from neurowire.propagate import (
    accumulate_dense,
    accumulate_slots,
    deliver_dense,
    deliver_slots,
)

native = pytest.importorskip("neurowire.learning.native")


def events_equal(a: SpikeEvents, b: SpikeEvents) -> bool:
    return (
        a.n_rows == b.n_rows
        and a.n == b.n
        and torch.equal(a.row, b.row)
        and torch.equal(a.pre, b.pre)
        and torch.equal(a.row_pointers(), b.row_pointers())
    )


@pytest.mark.parametrize("p", [0.3, 1.0])  # 1.0: every input spikes at every step
def test_forward_lists_the_input_spikes_in_row_order(p):
    net, out = make_network("alif", sparse=True, cross_sparse=False)
    enet = compile_network(net, out)
    x, _ = random_input(3, 7, 5, p=p, seed=4)
    x_ev, psi, z_ev = native.forward(x, w := gather_weights(enet, None), enet)
    assert events_equal(x_ev, input_events(x))
    assert x_ev.count == (x.sum() if p < 1 else 3 * 7 * 5)
    again = native.forward(x.to(torch.uint8), w, enet)  # 0/1 bytes are read the same
    assert events_equal(again[0], x_ev) and events_equal(again[2], z_ev)


def test_delayed_events_are_the_previous_steps_spikes():
    z = (torch.rand(7, 3, 6, generator=torch.Generator().manual_seed(5)) < 0.3).double()
    events = SpikeEvents.from_dense(z.reshape(-1, 6))
    shifted = SpikeEvents.from_dense(z[:-1].reshape(-1, 6), row_offset=3, n_rows=21)
    assert events_equal(events.delayed(3), shifted)
    assert events.delayed(21).count == 0
    assert torch.equal(events.counts(), z.sum((0, 1)).long())


def test_delivery_and_accumulation_kernels():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(4, 6, 5, generator=gen) < 0.4
    ev = input_events(x)
    w = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    out_ref, out = torch.zeros(24, 7, dtype=torch.float64), torch.zeros(24, 7, dtype=torch.float64)
    deliver_dense(out_ref, ev, w, 2)
    native.deliver_dense(out, ev, w, 2)
    torch.testing.assert_close(out, out_ref)
    post = torch.randint(0, 7, (5, 4), generator=gen)
    length = torch.tensor([4, 0, 2, 3, 1])
    ws = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    ws[torch.arange(4)[None, :] >= length[:, None]] = 0.0  # padding carries no weight
    out_ref.zero_()
    out.zero_()
    deliver_slots(out_ref, ev, post, ws)
    native.deliver_slots(out, ev, post, length, ws)
    torch.testing.assert_close(out, out_ref)
    h = torch.randn(24, 7, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(
        native.accumulate_dense(ev, h, 2, 3), accumulate_dense(ev, h, 2, 3).to_dense()
    )
    live = torch.arange(4)[None, :] < length[:, None]
    torch.testing.assert_close(
        native.accumulate_slots(ev, h, post, length), accumulate_slots(ev, h, post) * live
    )


LAYOUTS = [  # (kind, sparse, cross_sparse): tables of every kind the fused kernels read
    ("mixed", True, False),  # input: two slot tables side by side; recurrent: dense
    ("mixed", False, False),  # input: dense; recurrent: dense with slot projections in it
    ("mixed", True, True),  # input and recurrent: slot tables side by side
    ("mixed_beta", True, True),
    ("lif", True, False),  # one slot table each (the store's own rows)
    ("alif", False, False),  # dense
]


@pytest.mark.parametrize(("kind", "sparse", "cross_sparse"), LAYOUTS)
# 8: learning signal in blocks of 6 + 8 + 8 + 8, each product in column strips of <= 4
# neurons; dense gradients in tiles of 3 columns
@pytest.mark.parametrize("block", [None, 8])
def test_fused_forward_and_backward_kernels(kind, sparse, cross_sparse, block, monkeypatch):
    if block is not None:
        monkeypatch.setattr(native, "signal_block", lambda n_out, n: block)
        monkeypatch.setattr(native, "BLAS_SINGLE_THREAD", block * 3 * 4)  # 3 readout neurons
        monkeypatch.setattr(native, "tile_width", lambda *shape: 3)
    net, out = make_network(kind, sparse=sparse, cross_sparse=cross_sparse)
    enet = compile_network(net, out)
    w = gather_weights(enet, None)
    x, _ = random_input(3, 30, 5, p=0.3, seed=2)
    ev, psi, z_ev = native.forward(x, w, enet)
    psi = psi.clone()
    assert events_equal(ev, input_events(x))
    d_ref, z_ref = simulate(enet, w, input_currents(enet, w, ev, 30))
    assert events_equal(z_ev, hidden_events(z_ref)) and z_ev.count > 10
    torch.testing.assert_close(psi, pseudo_derivative_(d_ref, enet.hidden))
    gen = torch.Generator().manual_seed(3)
    e_kappa = torch.randn(30, 3, enet.n_out, generator=gen, dtype=psi.dtype)
    reg = torch.randn(enet.hidden.n, generator=gen, dtype=psi.dtype)
    task, unit = native.backward(psi.clone(), e_kappa, reg, ev, z_ev, w, enet, True)  # H over psi
    lam = (e_kappa.reshape(-1, enet.n_out) @ w.feedback.t()).view(psi.shape) + reg
    rec_ev = recurrent_events(enet, z_ev, 3)
    h = membrane_adjoint_(psi, lam, enet.hidden)
    h1 = membrane_adjoint_(psi, torch.ones_like(psi), enet.hidden)
    for got, adjoint in ((task, h), (unit, h1)):
        ref = spike_products(enet, w, adjoint, ev, rec_ev)
        assert set(got) == set(ref) == {p.name for p in enet.plastic}
        for name in ref:
            torch.testing.assert_close(got[name], ref[name], msg=name)
    assert native.backward(psi.clone(), e_kappa, reg, ev, z_ev, w, enet, False)[1] == {}


def test_scan_kernel():
    u = torch.randn(30, 3, 2, dtype=torch.float64)
    for reverse in (False, True):
        torch.testing.assert_close(
            native.leaky_scan_(u.clone(), 0.9, reverse), leaky_scan_(u.clone(), 0.9, reverse)
        )


def test_signal_block_keeps_each_product_on_the_calling_thread():
    assert native.signal_block(20, 512) == 25  # 25 * 20 * 512 <= 2^18 < 26 * 20 * 512
    assert native.signal_block(1, 10) == 64 and native.signal_block(50, 4096) == 8
    assert native.signal_strips(20, 512, 25) == 1
    for n_out, n in ((20, 8192), (50, 4096), (3, 10**6)):
        block = native.signal_block(n_out, n)
        strips = native.signal_strips(n_out, n, block)
        assert block * n_out * -(-n // strips) <= native.BLAS_SINGLE_THREAD
        assert block * n_out * -(-n // (strips - 1)) > native.BLAS_SINGLE_THREAD


def test_dense_gradient_tiles_fit_the_cache_and_cover_the_threads():
    assert native.tile_width(8192, 8192, 4, 2) == 64  # one quantum, 2 MiB
    assert native.tile_width(700, 8192, 4, 2) == 320  # 700 x 320 float32 = 875 KiB
    assert native.tile_width(700, 100, 4, 2) == 64  # a tile for each thread
    assert native.tile_width(5, 1, 8, 2) == 1


@pytest.mark.parametrize(("kind", "sparse", "cross_sparse"), LAYOUTS[:3])
@pytest.mark.parametrize("chunk_size", [None, 2])
def test_native_engine_equals_torch_engine(kind, sparse, cross_sparse, chunk_size):
    x, labels = random_input(4, 40, 5, seed=4)
    reg = RateRegularizer(c=50.0, f_target_hz=20.0)
    grads = {}
    for engine in ("torch", "native"):
        net, out = make_network(kind, sparse=sparse, cross_sparse=cross_sparse)
        trainer = EProp(net, out, engine=engine, chunk_size=chunk_size, regularization=reg)
        assert trainer.engine == engine
        grads[engine] = trainer.compute_gradients(x, labels)
    errors = max_rel_error(grads["native"], grads["torch"])
    assert max(errors.values()) < 1e-12, errors


def test_native_float32_and_training_step_match_torch():
    x, labels = random_input(4, 40, 5, seed=5)
    states = {}
    for engine in ("torch", "native"):
        net, out = make_network("mixed", sparse=True, dtype=torch.float32)
        trainer = EProp(net, out, engine=engine)
        trainer.train_step(x, labels)
        states[engine] = net.projections["inp->a"].synapses.vars["weight"]
    torch.testing.assert_close(states["native"], states["torch"], rtol=1e-5, atol=1e-6)


def test_auto_engine_is_native_on_the_cpu_and_choices_are_checked():
    net, out = make_network("lif")
    assert EProp(net, out).engine == "native"
    choices = r"engine must be one of \('auto', 'torch', 'native', 'triton'\)"
    with pytest.raises(ValueError, match=choices):
        EProp(net, out, engine="numba")


def test_native_state_below_the_smallest_normal_is_flushed():
    u = torch.zeros(3, 1, 1, dtype=torch.float32)
    u[0] = 1e-37
    native.leaky_scan_(u, 0.01, False)
    assert u[1].item() == 0.0 and u[2].item() == 0.0


def test_building_a_trainer_keeps_the_callers_torch_thread_count():
    # a fresh process: numba's OpenMP pool starts (and resets the OpenMP thread count) once
    code = (
        "import torch; torch.set_num_threads(1)\n"
        "import neurowire as nw\n"
        "net = nw.Network(); i = net.population('i', nw.SpikeSource(3))\n"
        "h = net.population('h', nw.LIF(4)); o = net.population('o', nw.LeakyIntegrator(2))\n"
        "net.connect(i, h, nw.Dense()); net.connect(h, o, nw.Dense())\n"
        "nw.EProp(net, o, engine='native')\n"
        "print(torch.get_num_threads())\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-1] == "1"


def test_native_engine_budgets_its_own_arrays_so_a_paper_batch_is_one_chunk():
    import neurowire as nw

    net = nw.Network(dt=1.0, seed=0)
    inp = net.population("input", nw.SpikeSource(700))
    hid = net.population("hidden", nw.ALIF(512))
    out = net.population("output", nw.LeakyIntegrator(20))
    net.connect(inp, hid, nw.FixedProbability(0.01), weight=nw.Normal(0.0, 0.1))
    net.connect(hid, hid, nw.FixedProbability(0.01), weight=nw.Normal(0.0, 0.1))
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0.0, 0.1))
    reg = RateRegularizer()
    size = {
        e: gradient_pass.chunk_size(EProp(net, output=out, engine=e, regularization=reg), 1400)
        for e in ("native", "torch")
    }
    assert size["native"] >= 64 > size["torch"]  # SHD's T: 64 trials fold the regulariser


def test_without_a_regulariser_the_chunks_bound_the_per_neuron_arrays():
    import neurowire as nw
    from neurowire.learning.gradient_pass import CPU_CHUNK_BUDGET, NEURON_CHUNK_BUDGET

    net = nw.Network(dt=1.0, seed=0)
    inp = net.population("input", nw.SpikeSource(700))
    hid = net.population("hidden", nw.ALIF(4096))
    out = net.population("output", nw.LeakyIntegrator(20))
    net.connect(inp, hid, nw.FixedProbability(0.01), weight=nw.Normal(0.0, 0.1))
    net.connect(hid, hid, nw.FixedProbability(0.01), weight=nw.Normal(0.0, 0.1))
    net.connect(hid, out, nw.Dense(), weight=nw.Normal(0.0, 0.1))
    per_trial = 1400 * ((4096 + 4 * 20) * 4 + 4 * (700 + 4096))  # psi, readout (float32), lists
    free = gradient_pass.chunk_size(EProp(net, output=out), 1400)
    reg = RateRegularizer()
    folded = gradient_pass.chunk_size(EProp(net, output=out, regularization=reg), 1400)
    assert free == NEURON_CHUNK_BUDGET // per_trial < folded == CPU_CHUNK_BUDGET // per_trial


@pytest.mark.parametrize(("kind", "sparse", "cross_sparse"), [LAYOUTS[1], LAYOUTS[4]])
def test_gradients_do_not_depend_on_the_per_neuron_budget(kind, sparse, cross_sparse, monkeypatch):
    x, labels = random_input(4, 40, 5, seed=6)
    grads = {}
    for budget in (gradient_pass.CPU_CHUNK_BUDGET, 1):  # one chunk; one trial per chunk
        monkeypatch.setattr(gradient_pass, "NEURON_CHUNK_BUDGET", budget)
        net, out = make_network(kind, sparse=sparse, cross_sparse=cross_sparse)
        trainer = EProp(net, out, engine="native")
        assert (gradient_pass.chunk_size(trainer, 40) == 1) == (budget == 1)
        grads[budget] = trainer.compute_gradients(x, labels)
    errors = max_rel_error(grads[1], grads[gradient_pass.CPU_CHUNK_BUDGET])
    assert max(errors.values()) < 1e-12, errors


def test_native_tables_are_the_stores_rows_and_ignore_what_padding_holds():
    x, labels = random_input(4, 40, 5, seed=7)
    grads = {}
    for engine in ("torch", "native"):
        net, out = make_network("lif", sparse=True)
        for proj in net.projections.values():
            if proj.sparse:  # stale values past each row's length, as removals leave them
                s = proj.synapses
                with s.mutation():
                    s.vars["weight"][~s.live] = 7.0
                    s.ind[~s.live] = s.n_post - 1
        trainer = EProp(net, out, engine=engine)
        if engine == "native":
            inp, rec = native.layouts(gather_weights(trainer.network, None), trainer.network)
            for layout in (inp, rec):
                ((pw, _, _),) = layout.parts
                s = pw.store
                assert pw.own_rows and layout.weight is s.vars["weight"] and layout.post is s.ind
        grads[engine] = trainer.compute_gradients(x, labels)
    errors = max_rel_error(grads["native"], grads["torch"])
    assert max(errors.values()) < 1e-12, errors
