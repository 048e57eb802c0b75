"""The Triton engine of factorised e-prop equals the PyTorch engine: forward, backward, whole.

On CUDA when there is a device, else on CPU tensors in Triton's interpreter (``conftest.py``
sets ``TRITON_INTERPRET=1``); the networks are tiny because the interpreter is slow.
"""

from __future__ import annotations

import pytest
import torch

import neurowire as nw
from neurowire.codegen import ModelCodeError, Scalar, spike, translate
from neurowire.learning import EProp, RateRegularizer
from neurowire.learning.compiled import compile_network
from neurowire.learning.factorized import membrane_adjoint_, recurrent_events, spike_products
from neurowire.learning.forward import gather_weights, hidden_events, hidden_forward, input_events

pytest.importorskip("triton")
triton_engine = pytest.importorskip("neurowire.learning.triton")

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
STEPS, BATCH, N_IN = 15, 2, 5
#: per dtype: (rtol, atol) of psi and of the gradients relative to their largest entry
TOLERANCE = {torch.float32: (1e-5, 1e-6), torch.float64: (1e-10, 1e-12)}


def network(kind: str, sparse: bool, cross_sparse: bool = False, dtype=torch.float64):
    """5 inputs, 7 hidden (``"lif"``, ``"alif"``, or ``"mixed"``: 4 ALIF + 3 LIF), 3 outputs.

    Input and within-population projections are FixedProbability with padding if ``sparse``
    (else Dense); between populations the other kind unless ``cross_sparse``.
    """
    net = nw.Network(dt=1.0, seed=1, dtype=dtype)
    inp = net.population("inp", nw.SpikeSource(N_IN))
    alif = {"tau_m": 20.0, "tau_a": 100.0, "beta": 0.3, "v_th": 0.5, "tau_refrac": 2.0}
    if kind == "lif":
        pops = [net.population("h", nw.LIF(7, tau_m=20.0, v_th=0.5, tau_refrac=2.0))]
    elif kind == "alif":
        pops = [net.population("h", nw.ALIF(7, **alif))]
    else:
        pops = [
            net.population("a", nw.ALIF(4, **alif)),
            net.population("b", nw.LIF(3, tau_m=25.0, v_th=0.4, tau_refrac=1.0)),
        ]
    out = net.population("out", nw.LeakyIntegrator(3, tau=20.0, bias=nw.Normal(0.0, 0.3)))

    def conn(p: float):
        return (nw.FixedProbability(p), 1.5) if sparse else (nw.Dense(), 1.0)

    for p in pops:
        c, pad = conn(0.7)
        net.connect(inp, p, c, weight=nw.Normal(0.35, 0.6), padding=pad)
        net.connect(p, out, nw.Dense(), weight=nw.Normal(0.0, 0.5))
    for p in pops:
        for q in pops:
            c, pad = conn(0.5)
            if p is not q and not cross_sparse:
                c = nw.Dense() if sparse else nw.FixedProbability(0.5)
            elif p is not q:
                c = nw.FixedProbability(0.5)
            net.connect(p, q, c, weight=nw.Normal(0.0, 0.5), padding=pad)
    return net, out


def spikes(seed: int, batch: int = BATCH, p: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, STEPS, N_IN, generator=gen) < p, torch.randint(0, 3, (batch,))


def assert_close_relative(got: dict, ref: dict, dtype: torch.dtype) -> None:
    """Every entry within ``rtol * max|ref|`` (plus atol) of the reference."""
    rtol, atol = TOLERANCE[dtype]
    assert set(got) == set(ref), (sorted(got), sorted(ref))
    for key, value in ref.items():
        scale = float(value.abs().max())
        assert scale > 0, f"reference {key!r} is all zero: the test is vacuous"
        err = float((got[key].double() - value.double()).abs().max())
        assert err <= rtol * scale + atol, (key, err, scale)


#: (kind, sparse, cross_sparse): every kind of table the kernels read
LAYOUTS = [
    pytest.param("lif", True, False, id="lif-slots"),  # the stores' own slot rows
    pytest.param("alif", False, False, id="alif-dense"),
    pytest.param("mixed", True, True, id="mixed-merged-slots"),  # slot tables side by side
    pytest.param("mixed", True, False, id="mixed-slots-in-dense"),  # recurrent dense + slots
]
DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kind", "sparse", "cross_sparse"), LAYOUTS)
def test_forward_and_backward_kernels_equal_the_torch_engine(kind, sparse, cross_sparse, dtype):
    net, out = network(kind, sparse, cross_sparse, dtype)
    enet = compile_network(net, out, DEVICE)
    w = gather_weights(enet, None)
    x, _ = spikes(2)
    ev = input_events(x.to(DEVICE))
    psi, z = triton_engine.forward(ev, w, enet, STEPS)
    psi, z = psi.clone(), z.clone()
    psi_ref, z_ref = hidden_forward(enet, w, ev, STEPS)
    assert z.dtype == torch.uint8 and torch.equal(z.to(dtype), z_ref) and z.sum() > 10
    assert_close_relative({"psi": psi}, {"psi": psi_ref}, dtype)

    gen = torch.Generator().manual_seed(3)
    e_kappa = torch.randn(STEPS, BATCH, enet.n_out, generator=gen, dtype=dtype).to(DEVICE)
    reg = torch.randn(enet.hidden.n, generator=gen, dtype=dtype).to(DEVICE)
    z_ev = hidden_events(z)
    task, unit = triton_engine.backward(psi, e_kappa, reg, ev, z_ev, w, enet, True)
    lam = (e_kappa.reshape(-1, enet.n_out) @ w.feedback.t()).view(psi.shape) + reg
    rec_ev = recurrent_events(enet, z_ev, BATCH)
    h = membrane_adjoint_(psi, lam, enet.hidden)
    h1 = membrane_adjoint_(psi, torch.ones_like(psi), enet.hidden)
    assert_close_relative(task, spike_products(enet, w, h, ev, rec_ev), dtype)
    assert_close_relative(unit, spike_products(enet, w, h1, ev, rec_ev), dtype)
    task_only, empty = triton_engine.backward(psi, e_kappa, None, ev, z_ev, w, enet, False)
    assert empty == {} and set(task_only) == set(task)


@pytest.mark.parametrize(
    ("kind", "sparse", "cross_sparse", "chunk_size"),
    [("mixed", True, False, None), ("mixed", True, True, 2), ("alif", False, False, None)],
)
def test_triton_engine_gradients_equal_the_torch_engine(kind, sparse, cross_sparse, chunk_size):
    x, labels = spikes(4, batch=3)
    reg = RateRegularizer(c=50.0, f_target_hz=20.0)
    grads = {}
    for engine in ("torch", "triton"):
        net, out = network(kind, sparse, cross_sparse)
        trainer = EProp(
            net, out, engine=engine, chunk_size=chunk_size, regularization=reg, device=DEVICE
        )
        assert trainer.engine == engine
        grads[engine] = trainer.compute_gradients(x, labels)
    assert_close_relative(grads["triton"], grads["torch"], torch.float64)


def test_triton_float32_training_step_equals_the_torch_engine():
    x, labels = spikes(5, batch=3)
    weights, hidden = {}, {}
    for engine in ("torch", "triton"):
        net, out = network("mixed", True, dtype=torch.float32)
        trainer = EProp(net, out, engine=engine, device=DEVICE)
        trainer.train_step(x, labels)
        weights[engine] = {
            name: p.synapses.vars["weight"] if p.sparse else p.weight
            for name, p in net.projections.items()
        }
        hidden[engine] = trainer.hidden_spikes(x)
    assert torch.equal(hidden["triton"], hidden["torch"])
    for name, ref in weights["torch"].items():
        torch.testing.assert_close(weights["triton"][name], ref, rtol=1e-5, atol=1e-6, msg=name)


def test_engine_choice(monkeypatch):
    net, out = network("lif", True)
    with pytest.raises(ValueError, match=r"engine must be one of .*'triton'"):
        EProp(net, out, engine="cuda")
    assert EProp(net, out, device="cpu").engine == "native"  # auto on the CPU
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        EProp(net, out, engine="triton", device="cpu")


def test_triton_translation_of_the_model_language():
    spec = Scalar(state={"v": "v", "r": "r", "z": "z"}, inputs={"i_syn": "i_syn"}, constants={})
    model = nw.LIF(3, tau_refrac=2.0)
    spec.constants = model.cached_constants(1.0)
    numba_code = "\n".join(translate(model, "update", spec).lines)
    assert "(distance > 0) & (not refractory)" in numba_code  # the numba target as before
    assert "(2 if z_1 else max((r_0 - 1), 0))" in numba_code and "np.float64(" in numba_code
    spec.target = "triton"
    code = "\n".join(translate(model, "update", spec).lines)
    assert "tl.where(z_1 != 0, 2, tl.maximum((r_0 - 1), 0))" in code
    assert "(refractory == 0)" in code and "np." not in code and "not " not in code

    class Powered(nw.LIF):
        def update(self, s, c, i_syn):
            s.v = s.v**2 + i_syn
            s.z = spike(s.v - c.v_th, False)

    with pytest.raises(ModelCodeError, match="Pow has no Triton translation"):
        translate(Powered(3), "update", spec)
