"""2-D grids: positions, periodic wrap into [-n/2, n/2) and torus distances."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import neurowire as nw
from neurowire.grid import same_grid, wrap


def test_positions_are_column_and_row_of_each_id(device):
    g = nw.Grid(3, 5)  # 3 rows, 5 columns: id = y * 5 + x
    pos = g.positions(device)
    assert pos.shape == (15, 2) and pos.dtype == torch.float32
    assert pos.device.type == device.type
    assert pos[7].tolist() == [2.0, 1.0]
    assert pos[14].tolist() == [4.0, 2.0]
    assert pos.tolist() == [[float(i % 5), float(i // 5)] for i in range(15)]
    assert g.n == 15 and g.shape == (3, 5)


@pytest.mark.parametrize("n", [16, 5, 1])
def test_wrap_maps_offsets_into_half_open_interval_and_keeps_them_congruent(device, n):
    d = torch.arange(-3 * n, 3 * n + 1, dtype=torch.float32, device=device)
    w = wrap(d, n)
    assert bool((w >= -n / 2).all()) and bool((w < n / 2).all())
    assert bool((torch.remainder(w - d, n) == 0).all())


def test_wrap_sends_the_half_way_offset_to_minus_half(device):
    d16 = torch.tensor([8.0, -8.0, 7.0, -9.0, 24.0], device=device)
    assert wrap(d16, 16).tolist() == [-8, -8, 7, 7, -8]
    assert wrap(torch.tensor([2.0, 3.0, -3.0], device=device), 5).tolist() == [2, -2, 2]


def test_offsets_wrap_each_axis_with_its_own_size(device):
    g = nw.Grid(4, 6)  # 4 rows, 6 columns
    pre, post = torch.tensor([0, 0, 0], device=device), torch.tensor([5, 18, 23], device=device)
    dx, dy = g.offsets(pre, post)
    # id 5 = (5, 0): dx -1; id 18 = (0, 3): dy -1; id 23 = (5, 3): (-1, -1)
    assert dx.tolist() == [-1, 0, -1] and dy.tolist() == [0, -1, -1]
    flat = nw.Grid(4, 6, periodic=False)
    dx, dy = flat.offsets(pre, post)
    assert dx.tolist() == [5, 0, 5] and dy.tolist() == [0, 3, 3]


def test_torus_distance_is_the_shortest_distance_over_periodic_images(device):
    g = nw.Grid(4, 6)
    ids = torch.arange(g.n, device=device)
    d = g.distance(ids[:, None], ids[None, :]).cpu()
    pos = g.positions()
    shifts = [(sx * 6, sy * 4) for sx, sy in itertools.product((-1, 0, 1), repeat=2)]
    for a, b in itertools.product(range(g.n), repeat=2):
        want = min(
            math.dist(pos[a].tolist(), (pos[b][0] + sx, pos[b][1] + sy)) for sx, sy in shifts
        )
        assert float(d[a, b]) == pytest.approx(want), (a, b)
    assert torch.equal(d, d.T)


def test_open_grid_distance_is_euclidean(device):
    g = nw.Grid(4, 6, periodic=False)
    ids = torch.arange(g.n, device=device)
    pos = g.positions(device)
    assert torch.allclose(g.distance(ids[:, None], ids[None, :]), torch.cdist(pos, pos))


def test_torus_distances_on_the_16x16_map(device):
    g = nw.Grid(16, 16)
    post = torch.tensor([15, 255, 8, 8 * 16 + 8, 17], device=device)
    d = g.distance(torch.tensor(0, device=device), post)
    assert d.tolist() == pytest.approx([1.0, math.sqrt(2), 8.0, 8 * math.sqrt(2), math.sqrt(2)])


def test_grid_of_coerces_and_checks_size():
    assert nw.Grid.of(None, 10) is None
    g = nw.Grid.of((16, 16), 256)
    assert g == nw.Grid(16, 16, True)
    assert nw.Grid.of((2, 3), 6, periodic=False).periodic is False
    assert nw.Grid.of(g, 256) is g
    with pytest.raises(ValueError, match="grid 3 x 5 holds 15 neurons, population has 16"):
        nw.Grid.of((3, 5), 16)
    with pytest.raises(ValueError, match="grid sides must be >= 1, got 0 x 3"):
        nw.Grid(0, 3)


def test_same_grid_requires_two_equal_grids():
    g = nw.Grid(16, 16)
    assert same_grid(g, nw.Grid(16, 16), "X") == g
    with pytest.raises(ValueError, match="X needs both populations on a grid"):
        same_grid(None, g, "X")
    with pytest.raises(ValueError, match=r"X needs equal grids, got \(8, 32\) and \(16, 16\)"):
        same_grid(nw.Grid(8, 32), g, "X")
    with pytest.raises(ValueError, match="X needs equal grids"):
        same_grid(nw.Grid(16, 16, periodic=False), g, "X")


def test_population_grid_is_coerced_and_must_hold_its_neurons():
    net = nw.Network()
    pop = net.population("a", nw.PoissonSource(12, grid=(3, 4)))
    assert pop.grid == nw.Grid(3, 4)
    with pytest.raises(ValueError, match="holds 12 neurons, population has 10"):
        nw.PoissonSource(10, grid=(3, 4))
