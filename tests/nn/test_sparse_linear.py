"""nn.SparseLinear and nn.functional.sparse_linear: every backend against the dense reference.

The reference is ``sparse_linear_reference`` (a dense masked matmul, differentiated by
autograd). Each backend must give its output and its gradients for input, weight (live slots;
padding exactly 0) and bias, for spikes and for real input, over leading shapes, with empty and
full rows, and follow the store's wiring after every edit.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import neurowire as nw
from neurowire.nn import backends, functional
from neurowire.nn.functional import sparse_linear
from neurowire.nn.linear import sparse_linear_reference

HAVE_NUMBA = importlib.util.find_spec("numba") is not None

BACKENDS = [
    pytest.param(
        "numba",
        id="numba",
        marks=pytest.mark.skipif(not HAVE_NUMBA, reason="the numba backend needs numba"),
    ),
    pytest.param("torch", id="torch"),
]
DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]
SHAPES = [pytest.param((7,), id="R"), pytest.param((5, 3), id="TxB")]


def tol(dtype: torch.dtype) -> dict[str, float]:
    return {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-11, "rtol": 0}


def layer_with_edge_rows(
    generator: torch.Generator, n_in: int = 13, n_out: int = 11, dtype=torch.float32, bias=True
) -> nw.nn.SparseLinear:
    """A layer whose rows 0 and 1 are empty and row 2 is full (capacity synapses)."""
    layer = nw.nn.SparseLinear(
        n_in, n_out, nw.FixedProbability(0.3), bias=bias, generator=generator, dtype=dtype
    )
    s = layer.synapses
    with torch.no_grad():
        s.remove(torch.arange(s.n_pre)[:, None].expand(-1, s.capacity) < 2)
        row2 = set(s.ind[2, : int(s.row_length[2])].tolist())
        free = [j for j in range(n_out) if j not in row2][: s.capacity - len(row2)]
        w = torch.randn(len(free), generator=generator, dtype=dtype)
        s.add(torch.full((len(free),), 2), torch.tensor(free, dtype=torch.int64), weight=w)
        if bias:
            layer.bias.normal_(generator=generator)
    assert int(s.row_length[0]) == 0 and int(s.row_length[2]) == s.capacity
    assert layer.weight.data_ptr() == s.vars["weight"].data_ptr()
    return layer


def make_input(kind: str, shape: tuple, n: int, dtype, generator) -> torch.Tensor:
    """Spikes (``"spikes"`` floating 0/1, ``"bool"``) or real values (``"sparse"`` with zeros,
    ``"dense"``) of shape ``[*shape, n]``."""
    full = (*shape, n)
    active = torch.rand(full, generator=generator) < 0.3
    if kind == "bool":
        return active
    if kind == "spikes":
        return active.to(dtype)
    values = torch.randn(full, generator=generator, dtype=dtype)
    return values * active if kind == "sparse" else values


def run(fn, x, weight, bias, upstream):
    """Output and gradients (x, weight, bias) of ``fn(x, weight, bias)`` under ``upstream``."""
    x = x.detach().clone().requires_grad_(x.is_floating_point())
    weight = weight.detach().clone().requires_grad_()
    bias = None if bias is None else bias.detach().clone().requires_grad_()
    y = fn(x, weight, bias)
    (y * upstream).sum().backward()
    return y, x.grad, weight.grad, None if bias is None else bias.grad


def check_against_reference(layer, x, backend, generator):
    syn = layer.synapses
    upstream = torch.randn(
        (*x.shape[:-1], syn.n_post), generator=generator, dtype=layer.weight.dtype
    )
    got = run(
        lambda x, w, b: sparse_linear(x, w, syn, b, backend=backend),
        x,
        layer.weight,
        layer.bias,
        upstream,
    )
    want = run(
        lambda x, w, b: sparse_linear_reference(x, w, syn, b), x, layer.weight, layer.bias, upstream
    )
    for name, g, r in zip(("output", "grad x", "grad weight", "grad bias"), got, want, strict=True):
        assert (g is None) == (r is None), name
        if g is not None:
            torch.testing.assert_close(g, r, **tol(layer.weight.dtype), msg=name)
    assert bool((got[2][~syn.live] == 0).all()), "padding slots got a gradient"


# ---------------------------------------------------------------------- equal to the reference


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["spikes", "bool", "sparse", "dense"])
def test_backend_matches_reference_in_output_and_gradients(backend, dtype, shape, kind, generator):
    layer = layer_with_edge_rows(generator, dtype=dtype)
    x = make_input(kind, shape, layer.in_features, dtype, generator)
    check_against_reference(layer, x, backend, generator)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["spikes", "dense"])
def test_backend_matches_reference_without_bias_and_for_one_sample(backend, kind, generator):
    layer = layer_with_edge_rows(generator, bias=False)
    for shape in ((), (2, 2, 3)):
        x = make_input(kind, shape, layer.in_features, torch.float32, generator)
        check_against_reference(layer, x, backend, generator)


@pytest.mark.parametrize("backend", BACKENDS)
def test_numba_blocks_and_chunks_of_any_size_give_the_same_gradients(
    backend, generator, monkeypatch
):
    """One row per cache chunk and one feature per block: the block bounds are exact."""
    monkeypatch.setattr(backends, "CHUNK_BYTES", 1)
    monkeypatch.setattr(backends, "BLOCKS_PER_THREAD", 1000)
    layer = layer_with_edge_rows(generator, n_in=37, n_out=19)
    for kind in ("spikes", "sparse"):
        x = make_input(kind, (41,), layer.in_features, torch.float32, generator)
        check_against_reference(layer, x, backend, generator)


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_zero_input_and_no_rows(backend, generator):
    layer = layer_with_edge_rows(generator)
    for x in (torch.zeros(4, layer.in_features), torch.zeros(0, 3, layer.in_features)):
        check_against_reference(layer, x, backend, generator)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["spikes", "dense"])
def test_floating_input_of_another_dtype_is_cast_to_the_weights(backend, kind, generator):
    layer = layer_with_edge_rows(generator, dtype=torch.float64)
    x = make_input(kind, (6,), layer.in_features, torch.float32, generator).requires_grad_()
    y = sparse_linear(x, layer.weight, layer.synapses, layer.bias, backend=backend)
    assert y.dtype == torch.float64
    y.square().sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    sparse_linear_reference(
        x_ref, layer.weight, layer.synapses, layer.bias
    ).square().sum().backward()
    assert x.grad.dtype == torch.float32
    torch.testing.assert_close(x.grad, x_ref.grad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_uint8_counts_are_real_input(backend, generator):
    layer = layer_with_edge_rows(generator)
    x = torch.randint(0, 3, (6, layer.in_features), generator=generator, dtype=torch.uint8)
    y = sparse_linear(x, layer.weight, layer.synapses, layer.bias, backend=backend)
    ref = sparse_linear_reference(x, layer.weight, layer.synapses, layer.bias)
    torch.testing.assert_close(y, ref)


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    n_in=st.integers(1, 20),
    n_out=st.integers(1, 20),
    rows=st.integers(0, 12),
    p=st.floats(0.0, 1.0),
    rate=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_spike_input_matches_reference_for_any_size(backend, n_in, n_out, rows, p, rate, seed):
    gen = torch.Generator().manual_seed(seed)
    layer = nw.nn.SparseLinear(n_in, n_out, nw.FixedProbability(p), generator=gen)
    x = (torch.rand(rows, n_in, generator=gen) < rate).float()
    check_against_reference(layer, x, backend, gen)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["spikes", "dense"])
def test_gradcheck_in_float64(backend, kind, generator):
    layer = layer_with_edge_rows(generator, n_in=5, n_out=4, dtype=torch.float64)
    x = make_input(kind, (3,), 5, torch.float64, generator).requires_grad_()
    w = layer.weight.detach().clone().requires_grad_()
    b = layer.bias.detach().clone().requires_grad_()
    syn = layer.synapses
    assert torch.autograd.gradcheck(
        lambda x, w, b: sparse_linear(x, w, syn, b, backend=backend), (x, w, b)
    )


# ---------------------------------------------------------------------- padding, wiring


@pytest.mark.parametrize("backend", BACKENDS)
def test_padding_slots_are_ignored_and_get_exactly_zero_gradient(backend, generator):
    layer = layer_with_edge_rows(generator)
    s = layer.synapses
    x = make_input("spikes", (9,), layer.in_features, torch.float32, generator)
    clean = sparse_linear(x, layer.weight, s, layer.bias, backend=backend)
    with s.mutation():  # padding holds anything: columns out of range, nonzero weights
        s.ind[~s.live] = s.n_post + 7
    weight = layer.weight.detach().clone()
    weight[~s.live] = 1e6
    weight.requires_grad_()
    y = sparse_linear(x, weight, s, layer.bias, backend=backend)
    torch.testing.assert_close(y, clean)
    y.square().sum().backward()
    assert bool((weight.grad[~s.live] == 0).all())
    assert bool((weight.grad[s.live] != 0).any())


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_after_remove_and_add_uses_the_new_wiring(backend, generator):
    layer = layer_with_edge_rows(generator)
    layer.backend = backend
    s = layer.synapses
    x = make_input("spikes", (8,), layer.in_features, torch.float32, generator)
    before = layer(x).detach()
    with torch.no_grad():
        s.remove(s.live & (torch.rand(s.live.shape, generator=generator) < 0.5))
        pre = torch.tensor([0, 1, 1, 5])
        post = torch.tensor([3, 0, 4, 2])
        s.add(pre, post, on_duplicate="skip", on_full="skip", weight=torch.full((4,), 0.7))
    assert not torch.allclose(layer(x), before)
    check_against_reference(layer, x, backend, generator)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rewiring_between_forward_and_backward_raises(backend, generator):
    layer = layer_with_edge_rows(generator)
    layer.backend = backend
    y = layer(make_input("spikes", (4,), layer.in_features, torch.float32, generator))
    with torch.no_grad():
        layer.synapses.remove(layer.synapses.live)
    with pytest.raises(RuntimeError, match="structure changed between the forward and the"):
        y.sum().backward()


def test_second_derivative_raises(generator):
    layer = layer_with_edge_rows(generator)
    x = torch.randn(3, layer.in_features, requires_grad=True)
    (gx,) = torch.autograd.grad(layer(x).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="no second derivative"):
        gx.sum().backward()


def test_sparse_recurrent_runs_the_same_product(generator):
    rec = nw.nn.SparseRecurrent(12, nw.FixedProbability(0.4), generator=generator)
    z = (torch.rand(3, 12, generator=generator) < 0.5).float()
    ref = sparse_linear_reference(z, rec.weight, rec.synapses, rec.bias)
    torch.testing.assert_close(rec(z), ref)


# ---------------------------------------------------------------------- what backward keeps


def saved_by_forward(fn) -> list[torch.Tensor]:
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return saved


@pytest.mark.parametrize("backend", BACKENDS)
def test_spike_input_is_saved_as_int16_events_only(backend, generator):
    layer = nw.nn.SparseLinear(40, 30, nw.FixedProbability(0.2), generator=generator)
    layer.backend = backend
    x = make_input("spikes", (6, 5), 40, torch.float32, generator)
    saved = saved_by_forward(lambda: layer(x))
    assert {(t.dtype, t.numel()) for t in saved} == {
        (torch.int64, 6 * 5 + 1),
        (torch.int16, int(x.count_nonzero())),
    }
    assert len(saved) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_input_is_saved_by_reference_and_weight_only_for_the_input_gradient(
    backend, generator
):
    layer = nw.nn.SparseLinear(40, 30, nw.FixedProbability(0.2), generator=generator)
    layer.backend = backend
    x = torch.randn(6, 40, generator=generator)
    saved = saved_by_forward(lambda: layer(x))
    assert [t.data_ptr() for t in saved] == [x.data_ptr()]
    x.requires_grad_()
    saved = saved_by_forward(lambda: layer(x))
    assert {t.data_ptr() for t in saved} == {x.data_ptr(), layer.weight.data_ptr()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_feature_indices_widen_to_int32_past_int16(backend, generator):
    assert backends.feature_dtype(32767) == torch.int16
    n_in = 32768 + 5
    layer = nw.nn.SparseLinear(n_in, 3, nw.FixedProbability(0.001), generator=generator)
    x = torch.zeros(3, n_in)
    x[:, -40:] = (torch.rand(3, 40, generator=generator) < 0.5).float()
    x[:, :40] = (torch.rand(3, 40, generator=generator) < 0.5).float()
    layer.backend = backend
    saved = saved_by_forward(lambda: layer(x))
    assert torch.int32 in {t.dtype for t in saved}
    check_against_reference(layer, x, backend, generator)


# ---------------------------------------------------------------------- module behaviour


def test_default_backend_is_numba_on_the_cpu_when_installed():
    w = torch.zeros(2, 3)
    expected = "numba" if HAVE_NUMBA else "torch"
    assert backends.resolve_backend(None, w).name == expected
    assert backends.resolve_backend(None, w.half()).name == "torch"


def test_state_dict_round_trip_carries_the_connectivity(generator):
    a = layer_with_edge_rows(generator)
    b = nw.nn.SparseLinear(13, 11, nw.FixedProbability(0.3), generator=torch.Generator())
    assert b.synapses.capacity == a.synapses.capacity
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.synapses.row_length, a.synapses.row_length)
    assert torch.equal(b.synapses.ind[a.synapses.live], a.synapses.ind[a.synapses.live])
    x = make_input("spikes", (5,), 13, torch.float32, generator)
    torch.testing.assert_close(b(x), a(x))


def test_state_dict_of_another_capacity_is_refused(generator):
    a = nw.nn.SparseLinear(13, 11, nw.FixedProbability(0.3), generator=generator)
    b = nw.nn.SparseLinear(13, 11, nw.FixedProbability(0.3), padding=1.0, generator=generator)
    assert b.synapses.capacity != a.synapses.capacity
    with pytest.raises(ValueError, match=r"saved connectivity \(13, \d+\) does not fit this layer"):
        b.load_state_dict(a.state_dict())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "optimizer",
    [
        pytest.param(lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.1), id="adam"),
        pytest.param(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), id="sgd"),
    ],
)
def test_training_changes_only_live_slots(backend, optimizer, generator):
    layer = layer_with_edge_rows(generator)
    layer.backend = backend
    s = layer.synapses
    start = layer.weight.detach().clone()
    opt = optimizer(layer.parameters())
    target = torch.randn(8, 11, generator=generator)
    for _ in range(4):
        x = make_input("spikes", (8,), 13, torch.float32, generator)
        opt.zero_grad()
        (layer(x) - target).square().mean().backward()
        opt.step()
    assert bool((layer.weight[~s.live] == 0).all())
    assert bool((layer.weight[s.live] != start[s.live]).any())
    assert layer.weight.data_ptr() == s.vars["weight"].data_ptr()


@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_func_grad_matches_the_reference(backend, generator):
    """torch.func.grad through functional_call works: gradients for parameters and input."""
    layer = layer_with_edge_rows(generator)
    layer.backend = backend
    params = {k: v.detach() for k, v in layer.named_parameters()}
    x = torch.randn(4, 13, generator=generator)

    def loss(p, x):
        return torch.func.functional_call(layer, p, (x,)).square().sum()

    def loss_ref(p, x):
        return sparse_linear_reference(x, p["weight"], layer.synapses, p["bias"]).square().sum()

    got = torch.func.grad(loss, argnums=(0, 1))(params, x)
    want = torch.func.grad(loss_ref, argnums=(0, 1))(params, x)
    for key in params:
        torch.testing.assert_close(got[0][key], want[0][key])
    torch.testing.assert_close(got[1], want[1])


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_compile_runs_the_product_eagerly_and_follows_rewiring(backend, generator):
    """torch.compile(layer) works (the sparse product is a graph break) and stays equal to the
    reference after a rewiring."""
    layer = layer_with_edge_rows(generator)
    layer.backend = backend
    compiled = torch.compile(layer)
    for _ in range(2):
        x = make_input("spikes", (6,), 13, torch.float32, generator)
        y = compiled(x)
        ref = sparse_linear_reference(x, layer.weight, layer.synapses, layer.bias)
        torch.testing.assert_close(y, ref)
        y.sum().backward()
        assert bool((layer.weight.grad[~layer.synapses.live] == 0).all())
        layer.zero_grad()
        with torch.no_grad():
            layer.synapses.remove(layer.synapses.live & (layer.weight > 0))


# ---------------------------------------------------------------------- errors


def test_bad_inputs_raise_one_clear_error(generator):
    layer = layer_with_edge_rows(generator)
    with pytest.raises(ValueError, match=r"input has 12 features \(last dimension\), expected 13"):
        layer(torch.zeros(3, 12))
    with pytest.raises(TypeError, match="input must be floating .* got torch.int64"):
        layer(torch.zeros(3, 13, dtype=torch.int64))
    with pytest.raises(ValueError, match="input is on meta, the synapse store on cpu"):
        layer(torch.zeros(3, 13, device="meta"))
    with pytest.raises(ValueError, match=r"bias must be torch.float32 \[11\], got"):
        sparse_linear(torch.zeros(3, 13), layer.weight, layer.synapses, torch.zeros(5))
    with pytest.raises(ValueError, match="weight must have the store's slot shape"):
        sparse_linear(torch.zeros(3, 13), layer.weight[:, :-1], layer.synapses)
    with pytest.raises(ValueError, match="backend must be one of"):
        sparse_linear(torch.zeros(3, 13), layer.weight, layer.synapses, backend="cuda")


@pytest.mark.skipif(not HAVE_NUMBA, reason="needs numba")
def test_numba_backend_refuses_what_it_cannot_run(generator):
    layer = nw.nn.SparseLinear(13, 11, generator=generator, dtype=torch.float16)
    with pytest.raises(ValueError, match="'numba' backend cannot run .*float16"):
        sparse_linear(
            torch.zeros(3, 13, dtype=torch.float16), layer.weight, layer.synapses, backend="numba"
        )


def test_functional_module_exports():
    assert nw.nn.sparse_linear is functional.sparse_linear
