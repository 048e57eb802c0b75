"""Connectivity initialisers, the GeNN row-length bound and default capacities.

Statistical tolerances are stated per test; each uses its own seeded generator, so a pass or a
failure is reproducible.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import binom, chisquare

import neurowire as nw
from neurowire.connectivity import _bernoulli_pairs, default_capacity, row_quantile


def build(conn, n_pre, n_post, generator, device, **kwargs):
    """``conn``'s pairs drawn on ``device`` (checked there), returned on the CPU."""
    pre, post = conn.build(n_pre, n_post, generator=generator, device=device, **kwargs)
    assert pre.device.type == post.device.type == device.type
    pre, post = pre.cpu(), post.cpu()
    assert pre.dtype == torch.int64 and post.dtype == torch.int64
    assert pre.shape == post.shape and pre.dim() == 1
    if pre.numel():
        assert 0 <= int(pre.min()) and int(pre.max()) < n_pre
        assert 0 <= int(post.min()) and int(post.max()) < n_post
    key = pre * n_post + post
    assert bool((key[1:] > key[:-1]).all()), "pairs must be distinct and sorted row-major"
    return pre, post


def within_sds(value, mean, sd, k=5.0):
    return abs(value - mean) <= k * sd


# ------------------------------------------------------------ FixedProbability
@pytest.mark.parametrize("p", [0.02, 0.1, 0.5])
def test_fixed_probability_density_within_five_binomial_sds(device, generator, p):
    n_pre, n_post = 400, 300
    pre, _ = build(nw.FixedProbability(p), n_pre, n_post, generator, device)
    n = n_pre * n_post
    assert within_sds(pre.numel(), n * p, math.sqrt(n * p * (1 - p)))
    # row lengths are Binomial(n_post, p): their sample variance has SD ~ var * sqrt(2 / (n - 1))
    var = n_post * p * (1 - p)
    lengths = torch.bincount(pre, minlength=n_pre).double()
    assert within_sds(float(lengths.var()), var, var * math.sqrt(2 / (n_pre - 1)))


def test_fixed_probability_recurrent_has_no_autapses_by_default(device, generator):
    n, p = 200, 0.5
    pre, post = build(nw.FixedProbability(p), n, n, generator, device, same_population=True)
    assert not bool((pre == post).any())
    pairs = n * (n - 1)
    assert within_sds(pre.numel(), pairs * p, math.sqrt(pairs * p * (1 - p)))
    pre, post = build(
        nw.FixedProbability(p, autapses=True), n, n, generator, device, same_population=True
    )
    assert within_sds(int((pre == post).sum()), n * p, math.sqrt(n * p * (1 - p)))
    # between two populations (i, i) is an ordinary pair
    pre, post = build(nw.FixedProbability(p), n, n, generator, device)
    assert within_sds(int((pre == post).sum()), n * p, math.sqrt(n * p * (1 - p)))


def test_fixed_probability_extremes_are_exact(device, generator):
    pre, _ = build(nw.FixedProbability(0.0), 30, 20, generator, device)
    assert pre.numel() == 0
    pre, post = build(nw.FixedProbability(1.0), 30, 30, generator, device, same_population=True)
    assert pre.numel() == 30 * 29 and not bool((pre == post).any())


def test_recurrent_projection_store_forbids_autapses_so_growth_never_adds_one(device, generator):
    net = nw.Network(seed=3)
    hid = net.population("hid", nw.LIF(40))
    proj = net.connect(hid, hid, nw.FixedProbability(0.1), padding=3.0)
    s = proj.synapses.to(device)  # declared on the CPU, grown on ``device``
    assert s.autapses is False
    s.grow(torch.full((40,), 40, device=device), generator=generator)
    pre, post = s.coo()
    assert not bool((pre == post).any())
    with pytest.raises(ValueError, match=r"autapse \(7, 7\)"):
        s.add([7], [7])


# ------------------------------------------------------------ FixedNumberPost
def test_fixed_number_post_gives_exactly_k_distinct_uniform_targets(device, generator):
    n_pre, n_post, k = 300, 50, 16
    pre, post = build(
        nw.FixedNumberPost(k), n_pre, n_post, generator, device
    )  # distinct: see build()
    assert torch.bincount(pre, minlength=n_pre).tolist() == [k] * n_pre
    # each column is chosen by about n_pre * k / n_post = 96 rows (conservative chi-square:
    # draws within a row are without replacement)
    assert chisquare(torch.bincount(post, minlength=n_post).numpy()).pvalue > 1e-3


def test_fixed_number_post_recurrent_excludes_self_and_checks_k(device, generator):
    n = 30
    pre, post = build(nw.FixedNumberPost(n - 1), n, n, generator, device, same_population=True)
    assert pre.numel() == n * (n - 1) and not bool((pre == post).any())
    with pytest.raises(ValueError, match="k=30 exceeds the 29 possible targets"):
        nw.FixedNumberPost(n).build(n, n, generator=generator, device=device, same_population=True)
    pre, _ = build(nw.FixedNumberPost(n), n, n, generator, device)  # feed-forward: all n allowed
    assert pre.numel() == n * n


# ------------------------------------------------------------ AllToAll, OneToOne
def test_all_to_all_is_exact(device, generator):
    pre, post = build(nw.AllToAll(), 3, 4, generator, device)
    assert list(zip(pre.tolist(), post.tolist(), strict=True)) == [
        (i, j) for i in range(3) for j in range(4)
    ]
    pre, post = build(nw.AllToAll(), 4, 4, generator, device, same_population=True)
    assert pre.numel() == 16  # autapses=True by default
    pre, post = build(nw.AllToAll(autapses=False), 4, 4, generator, device, same_population=True)
    assert list(zip(pre.tolist(), post.tolist(), strict=True)) == [
        (i, j) for i in range(4) for j in range(4) if i != j
    ]


def test_one_to_one_is_exact_and_needs_equal_sizes(device, generator):
    pre, post = build(nw.OneToOne(), 5, 5, generator, device)
    assert pre.tolist() == post.tolist() == list(range(5))
    assert nw.OneToOne().max_row_length(5, 5) == 1
    with pytest.raises(ValueError, match="OneToOne needs n_pre == n_post, got 5 and 6"):
        nw.OneToOne().build(5, 6)


# ------------------------------------------------------------ GaussianDistance
GRID = nw.Grid(16, 16)
FF = nw.GaussianDistance(p_peak=0.16, sigma=2.5)  # the topographic map's feed-forward
LATERAL = nw.GaussianDistance(p_peak=1.0, sigma=1.0)  # and lateral connectivity


@pytest.mark.parametrize("conn, k_exact", [(FF, 6.26), (LATERAL, 6.28)], ids=["ff", "lateral"])
def test_gaussian_expected_in_degree_is_the_exact_torus_sum(conn, k_exact):
    """2 pi p_peak sigma^2 = 6.28 for both; the exact sums over the 16 x 16 torus are 6.26 / 6.28.
    On a torus every row has the same expectation."""
    expected = conn.expected_row_lengths(GRID, GRID)
    assert expected.shape == (256,)
    assert round(float(expected.mean()), 2) == k_exact
    assert float(expected.max() - expected.min()) < 1e-9
    assert abs(2 * math.pi * conn.p_peak * conn.sigma**2 - 6.28) < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("conn", [FF, LATERAL], ids=["ff", "lateral"])
def test_gaussian_mean_in_degree_and_empirical_sigma(device, generator, conn):
    """Ten draws: the mean in-degree lies within 4 SD (from sum p(1 - p)) of the exact sum, and
    the empirical sigma sqrt(<dx^2 + dy^2> / 2) of connection offsets within 0.1 of sigma
    (the paper's test suite)."""
    draws = 10
    cols = torch.arange(GRID.n)
    p = conn.probability(GRID.distance(cols[:, None], cols[None, :])).double()  # on the CPU
    sd_mean = math.sqrt(float((p * (1 - p)).sum()) * draws) / (GRID.n * draws)
    total, dx2 = 0, 0.0
    for _ in range(draws):
        pre, post = build(conn, GRID.n, GRID.n, generator, device, pre_grid=GRID, post_grid=GRID)
        in_degree = torch.bincount(post, minlength=GRID.n)
        total += int(in_degree.sum())
        dx, dy = GRID.offsets(pre, post)
        assert float(dx.abs().max()) <= 8 and float(dy.abs().max()) <= 8
        dx2 += float((dx * dx + dy * dy).sum())
    mean_in = total / (GRID.n * draws)
    assert within_sds(mean_in, float(p.sum()) / GRID.n, sd_mean, k=4.0)
    assert abs(math.sqrt(dx2 / (2 * total)) - conn.sigma) < 0.1


@pytest.mark.parametrize("shape", [(16, 16), (5, 7), (6, 3)])
def test_periodic_gaussian_offset_table_gives_the_pairwise_draws(device, shape):
    """On a torus the build reads one offset table; its pairs and expected row lengths equal
    the pairwise formula's (the same probabilities, so the same Bernoulli draws)."""
    grid = nw.Grid(*shape)
    conn = nw.GaussianDistance(p_peak=0.6, sigma=1.3)
    cols = torch.arange(grid.n, device=device)
    direct = conn.probability(grid.distance(cols[:, None], cols[None, :]))
    ref = _bernoulli_pairs(
        grid.n, grid.n, lambda rows: direct[rows], torch.Generator(device).manual_seed(4), device
    )
    got = conn.build(
        grid.n,
        grid.n,
        generator=torch.Generator(device).manual_seed(4),
        device=device,
        pre_grid=grid,
        post_grid=grid,
    )
    assert len(ref[0]) > grid.n and got[0].device.type == device.type
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
    rows = conn.expected_row_lengths(grid, grid)
    torch.testing.assert_close(rows, direct.double().sum(1).cpu(), rtol=1e-12, atol=1e-12)


def test_lateral_gaussian_always_makes_the_self_connection(device, generator):
    pre, post = build(LATERAL, 256, 256, generator, device, pre_grid=GRID, post_grid=GRID)
    assert int((pre == post).sum()) == 256  # p = p_peak = 1 at d = 0


def test_gaussian_wraps_around_the_torus_only_when_periodic(device, generator):
    closed = nw.GaussianDistance(1.0, 1.0, periodic=True)
    open_ = nw.GaussianDistance(1.0, 1.0, periodic=False)
    corner, right_edge, centre = 0, 15, 8 * 16 + 8  # (0, 0), (15, 0) and (8, 8)
    pre, post = build(closed, 256, 256, generator, device, pre_grid=GRID, post_grid=GRID)
    # x = 0 <-> x = 15 in the same grid row: distance 1 across the edge, p = exp(-1/2); 32 pairs
    across = ((post % 16 - pre % 16).abs() == 15) & (pre // 16 == post // 16)
    q = math.exp(-0.5)
    assert within_sds(int(across.sum()), 32 * q, math.sqrt(32 * q * (1 - q)))
    pre, post = build(open_, 256, 256, generator, device, pre_grid=GRID, post_grid=GRID)
    raw = (post % 16 - pre % 16).abs().max(), (post // 16 - pre // 16).abs().max()
    assert max(int(r) for r in raw) <= 6  # p(d >= 7) < 3e-11 per pair
    expected = open_.expected_row_lengths(GRID, GRID)
    assert float(expected[corner]) < float(expected[centre]) - 2.0  # edges lose neighbours
    assert closed.probability(GRID.distance(torch.tensor(corner), torch.tensor(right_edge))) == (
        pytest.approx(math.exp(-0.5))
    )


def test_gaussian_probability_profile(device):
    d = torch.tensor([0.0, 2.5, 5.0], device=device)
    assert FF.probability(d).tolist() == pytest.approx(
        [0.16, 0.16 * math.exp(-0.5), 0.16 * math.exp(-2.0)]
    )


def test_gaussian_needs_equal_grids():
    with pytest.raises(ValueError, match="needs both populations on a grid"):
        FF.build(256, 256, pre_grid=None, post_grid=GRID)
    with pytest.raises(ValueError, match="needs equal grids"):
        FF.build(256, 256, pre_grid=nw.Grid(8, 32), post_grid=GRID)
    with pytest.raises(ValueError, match="needs both populations on a grid"):
        FF.max_row_length(256, 256)


# ------------------------------------------------------------ capacity
@pytest.mark.parametrize(
    "n_pre, n_post, p, expected",
    [
        (2048, 512, 0.01, 21),
        (512, 512, 0.01, 20),
        (2048, 512, 0.05, 56),
        (512, 512, 0.05, 54),
        (2312, 512, 0.01, 21),
        (700, 512, 0.01, 20),
    ],
)
def test_max_row_length_reproduces_genn_binomial_table(n_pre, n_post, p, expected):
    """GeNN's max row length: BinomialInverseCDF(0.9999 ** (1 / n_pre), n_post, p)."""
    assert nw.FixedProbability(p).max_row_length(n_pre, n_post) == expected
    assert row_quantile(n_pre) == pytest.approx(0.9999 ** (1 / n_pre))
    # the bound is the quantile: the chance that any of the n_pre rows exceeds it is ~1e-4
    assert 1 - binom.cdf(expected, n_post, p) ** n_pre < 2e-4


def test_gaussian_bound_covers_the_rows_drawn(device, generator):
    bound = FF.max_row_length(256, 256, pre_grid=GRID, post_grid=GRID)
    assert 6.27 < bound <= 64
    for _ in range(5):
        pre, _ = build(FF, 256, 256, generator, device, pre_grid=GRID, post_grid=GRID)
        assert int(torch.bincount(pre, minlength=256).max()) <= bound


def test_default_capacity_helper():
    assert default_capacity(54, 2.0, 512) == 108
    assert default_capacity(54, 1.5, 512) == 81
    assert default_capacity(54, 20.0, 512) == 512
    with pytest.raises(ValueError, match="padding must be >= 1.0, got 0.5"):
        default_capacity(54, 0.5, 512)


def two_layer_net(n_pre=512, n_post=512, grid=None, seed=0):
    net = nw.Network(seed=seed)
    src = net.population("src", nw.PoissonSource(n_pre, grid=grid))
    tgt = net.population("tgt", nw.LIF(n_post, grid=grid))
    return net, src, tgt


@pytest.mark.parametrize(
    "conn, sizes, padding, capacity",
    [
        (nw.FixedProbability(0.05), (512, 512), 1.0, 54),
        (nw.FixedProbability(0.05), (512, 512), 2.0, 108),
        (nw.FixedProbability(0.05), (512, 512), 20.0, 512),
        (nw.FixedProbability(0.01), (2048, 512), 3.0, 63),
        (nw.FixedNumberPost(16), (100, 200), 2.5, 40),
        (nw.OneToOne(), (50, 50), 6.0, 6),
        (nw.AllToAll(), (20, 30), 2.0, 30),
    ],
)
def test_network_connect_default_capacity_is_padded_bound_capped_at_n_post(
    conn, sizes, padding, capacity
):
    net, src, tgt = two_layer_net(*sizes)
    proj = net.connect(src, tgt, conn, weight=0.1, padding=padding)
    assert proj.name == "src->tgt" and proj.synapses.name == "src->tgt"
    assert proj.synapses.capacity == capacity
    proj.synapses.validate()


def test_network_connect_gaussian_capacity_and_explicit_override():
    net, src, tgt = two_layer_net(256, 256, grid=(16, 16))
    bound = FF.max_row_length(256, 256, pre_grid=GRID, post_grid=GRID)
    proj = net.connect(src, tgt, FF, weight=0.2, padding=2.0)
    assert proj.synapses.capacity == min(256, int(bound * 2.0))
    lat = net.connect(tgt, tgt, LATERAL, weight=0.2, capacity=64)
    assert lat.synapses.capacity == 64
    assert torch.equal(lat.synapses.values("weight"), torch.full((lat.synapses.nnz,), 0.2))


def test_network_connect_rejects_capacity_below_the_initial_rows():
    net, src, tgt = two_layer_net(100, 100)
    with pytest.raises(nw.CapacityError, match=r"'src->tgt': row \d+ starts with 10 synapses"):
        net.connect(src, tgt, nw.FixedNumberPost(10), capacity=9)
    with pytest.raises(ValueError, match="padding must be >= 1.0"):
        net.connect(src, tgt, nw.FixedNumberPost(10), padding=0.9, name="p")


# ------------------------------------------------------------ FromArrays
def test_from_arrays_keeps_pairs_and_weights_matched_by_pair():
    net, src, tgt = two_layer_net(4, 6)
    pre = torch.tensor([3, 0, 3, 1])
    post = torch.tensor([5, 2, 0, 4])
    weight = (pre * 10 + post).float()
    proj = net.connect(src, tgt, nw.FromArrays(pre, post), weight=weight, padding=2.0)
    s = proj.synapses
    assert s.capacity == 4  # longest row 2, padded x2
    p, q = s.coo()
    assert set(zip(p.tolist(), q.tolist(), strict=True)) == {(3, 5), (0, 2), (3, 0), (1, 4)}
    assert torch.equal(s.values("weight"), (p * 10 + q).float())


@pytest.mark.parametrize(
    "pre, post, exc, match",
    [
        ([0, 1], [2], ValueError, r"equal length, got \(2,\) and \(1,\)"),
        ([[0, 1]], [[2, 3]], ValueError, "1-D"),
        ([0.0, 1.0], [2, 3], TypeError, "integer"),
        ([True, False], [2, 3], TypeError, "integer"),
    ],
)
def test_from_arrays_rejects_bad_arrays(pre, post, exc, match):
    with pytest.raises(exc, match=match):
        nw.FromArrays(torch.tensor(pre), torch.tensor(post))


def test_from_arrays_errors_at_connect_name_the_problem():
    net, src, tgt = two_layer_net(4, 6)
    with pytest.raises(ValueError, match=r"pre indices must lie in \[0, 4\)"):
        net.connect(src, tgt, nw.FromArrays(torch.tensor([4]), torch.tensor([0])))
    with pytest.raises(ValueError, match="post index 6 out of range"):
        net.connect(src, tgt, nw.FromArrays(torch.tensor([0]), torch.tensor([6])), name="a")
    with pytest.raises(nw.DuplicateSynapseError, match=r"\(1, 2\)"):
        net.connect(src, tgt, nw.FromArrays(torch.tensor([1, 1]), torch.tensor([2, 2])), name="b")
    with pytest.raises(ValueError, match=r"weight must have shape \(2,\)"):
        conn = nw.FromArrays(torch.tensor([1, 2]), torch.tensor([2, 3]))
        net.connect(src, tgt, conn, weight=torch.ones(3), name="c")
    assert not net.projections


def test_from_arrays_accepts_empty_lists():
    net, src, tgt = two_layer_net(4, 6)
    proj = net.connect(src, tgt, nw.FromArrays([], []), padding=2.0)
    assert proj.synapses.nnz == 0


def test_connectivity_is_reproducible_for_a_network_seed():
    def draw():
        net, src, tgt = two_layer_net(256, 256, grid=(16, 16), seed=11)
        proj = net.connect(src, tgt, FF, weight=nw.Normal(0.2, 0.05))
        return proj.synapses

    a, b = draw(), draw()
    assert torch.equal(torch.stack(a.coo()), torch.stack(b.coo()))
    assert torch.equal(a.values("weight"), b.values("weight"))


# ------------------------------------------------------------ bad parameters
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: nw.FixedProbability(1.5), r"p must lie in \[0, 1\], got 1.5"),
        (lambda: nw.FixedProbability(-0.1), r"p must lie in \[0, 1\]"),
        (lambda: nw.FixedProbability(float("nan")), r"p must lie in \[0, 1\]"),
        (lambda: nw.FixedNumberPost(-1), "k must be >= 0, got -1"),
        (lambda: nw.GaussianDistance(1.2, 1.0), r"p_peak must lie in \[0, 1\]"),
        (lambda: nw.GaussianDistance(0.5, 0.0), "sigma must be > 0"),
        (lambda: nw.GaussianDistance(0.5, -1.0), "sigma must be > 0"),
        (lambda: nw.GaussianDistance(0.5, float("inf")), "sigma must be > 0"),
        (lambda: nw.GaussianDistance(0.5, float("nan")), "sigma must be > 0"),
    ],
)
def test_bad_connectivity_parameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()
