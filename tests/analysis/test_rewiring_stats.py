"""Event-log statistics, degrees, displacement maps and ConnectivityTimeline."""

import math

import numpy as np
import pytest

from neurowire.analysis import (
    ConnectivityTimeline,
    check_event_log,
    degree_stats,
    displacement_maps,
    event_rates,
    event_time_distance_histogram,
    expected_gaussian_degree,
    profile_dx0,
    select_projection,
)

GRID = (16, 16)
N = 256


def _log(t_ms, kind, distance=None, projection=None):
    n = len(t_ms)
    log = {
        "t_ms": np.asarray(t_ms, dtype=np.float64),
        "pre": np.zeros(n, dtype=np.int64),
        "post": np.arange(n, dtype=np.int64),
        "kind": np.asarray(kind, dtype=np.int8),
        "distance": np.asarray(distance if distance is not None else np.zeros(n), np.float32),
    }
    if projection is not None:
        log["projection"] = np.asarray(projection)
    return log


# --- event logs --------------------------------------------------------------------------------


def test_event_rates_count_per_bin_in_events_per_second():
    log = _log([10.0, 50.0, 250.0, 999.0, 1000.0], [1, -1, 1, -1, 1])
    edges, rate = event_rates(log, duration_ms=1000.0, bin_ms=200.0)
    np.testing.assert_allclose(edges, [0, 200, 400, 600, 800, 1000])
    np.testing.assert_allclose(rate, [2 / 0.2, 1 / 0.2, 0, 0, 2 / 0.2])  # t = duration: last bin
    _, form = event_rates(log, 1000.0, 200.0, kind="formation")
    _, elim = event_rates(log, 1000.0, 200.0, kind=-1)
    np.testing.assert_allclose(form, [5.0, 5.0, 0, 0, 5.0])
    np.testing.assert_allclose(elim, [5.0, 0, 0, 0, 5.0])
    np.testing.assert_allclose(form + elim, rate)


def test_event_rates_last_partial_bin_and_events_outside_are_ignored():
    log = _log([450.0, 499.0, -1.0, 600.0], [1, 1, 1, 1])
    edges, rate = event_rates(log, duration_ms=500.0, bin_ms=200.0)
    np.testing.assert_allclose(edges, [0, 200, 400, 500])
    np.testing.assert_allclose(rate, [0, 0, 2 / 0.1])


def test_time_distance_histogram_exact_counts():
    log = _log(
        t_ms=[0.0, 100.0, 150.0, 250.0, 399.0, 120.0],
        kind=[1, 1, -1, 1, -1, 1],
        distance=[0.0, 1.5, 0.5, 2.9, 1.0, 5.0],
    )
    te, de, counts = event_time_distance_histogram(log, 400.0, 200.0, 1.0, max_distance=3.0)
    np.testing.assert_allclose(te, [0, 200, 400])
    np.testing.assert_allclose(de, [0, 1, 2, 3])
    np.testing.assert_array_equal(counts, [[2, 1, 0], [0, 1, 1]])  # distance 5 beyond max: dropped
    _, _, form = event_time_distance_histogram(log, 400.0, 200.0, 1.0, 3.0, kind="formation")
    np.testing.assert_array_equal(form, [[1, 1, 0], [0, 0, 1]])
    _, de, all_d = event_time_distance_histogram(log, 400.0)  # default: up to the largest distance
    assert de[-1] == 5.0 and all_d.sum() == 6


def test_select_projection_and_log_validation():
    log = _log([1.0, 2.0, 3.0], [1, -1, 1], projection=["ff", "lat", "ff"])
    ff = select_projection(log, "ff")
    np.testing.assert_allclose(ff["t_ms"], [1.0, 3.0])
    with pytest.raises(ValueError, match="lacks key"):
        check_event_log({"t_ms": np.zeros(1)})
    bad = _log([1.0, 2.0], [1, 1])
    bad["pre"] = np.zeros(3, np.int64)
    with pytest.raises(ValueError, match=r"log\['pre'\]"):
        event_rates(bad, 10.0)
    with pytest.raises(ValueError, match=r"log\['kind'\].*got 0"):
        event_rates(_log([1.0], [0]), 10.0)
    with pytest.raises(ValueError, match="bin_ms"):
        event_rates(log, 10.0, bin_ms=-200.0)
    with pytest.raises(ValueError, match="duration_ms"):
        event_rates(log, 0.0)
    with pytest.raises(ValueError, match="distance_bin"):
        event_time_distance_histogram(log, 10.0, distance_bin=0.0)
    with pytest.raises(ValueError, match="kind"):
        event_rates(log, 10.0, kind="growth")


# --- degrees -----------------------------------------------------------------------------------


def test_degree_stats_exact_on_small_example():
    # in-degree per post [0, 1, 2, 0]; out-degree per pre [2, 1, 0]
    d = degree_stats(pre=[0, 0, 1], post=[1, 2, 2], n_pre=3, n_post=4)
    assert d["in_mean"] == pytest.approx(0.75)
    assert d["in_sd"] == pytest.approx(np.std([0, 1, 2, 0]))
    assert d["out_mean"] == pytest.approx(1.0)
    assert d["out_sd"] == pytest.approx(math.sqrt(2 / 3))
    assert d["nnz"] == 3
    with pytest.raises(ValueError, match="post holds id 4"):
        degree_stats([0], [4], 3, 4)
    with pytest.raises(ValueError, match="equal lengths"):
        degree_stats([0, 1], [0], 3, 4)


def test_expected_gaussian_degree():
    assert expected_gaussian_degree(0.16, 2.5) == pytest.approx(6.283, abs=1e-3)
    assert expected_gaussian_degree(1.0, 1.0) == pytest.approx(2 * math.pi)
    with pytest.raises(ValueError, match="sigma"):
        expected_gaussian_degree(0.16, 0.0)


# --- displacement maps -------------------------------------------------------------------------


def _all_to_all(n=N):
    pre, post = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return pre.ravel(), post.ravel()


def _offset(pre, post, n_cols=16, n_rows=16):
    dx = (post % n_cols - pre % n_cols + n_cols // 2) % n_cols - n_cols // 2
    dy = (post // n_cols - pre // n_cols + n_rows // 2) % n_rows - n_rows // 2
    return dx, dy


def test_all_to_all_has_probability_one_and_recovers_offset_weight():
    pre, post = _all_to_all()
    dx, dy = _offset(pre, post)
    w = 1.0 + 0.1 * dx + 0.01 * dy  # a known function of the offset
    maps = displacement_maps(pre, post, GRID, weight=w)
    np.testing.assert_array_equal(maps.dx, np.arange(-8, 8))
    np.testing.assert_array_equal(maps.dy, np.arange(-8, 8))
    np.testing.assert_array_equal(maps.probability, 1.0)
    np.testing.assert_array_equal(maps.pairs, N)
    expected = 1.0 + 0.1 * maps.dx[None, :] + 0.01 * maps.dy[:, None]
    np.testing.assert_allclose(maps.mean_weight, expected, atol=1e-12)


def test_single_offset_pattern():
    post = np.arange(N)
    pre = (post // 16) * 16 + (post % 16 - 1) % 16  # post = pre shifted by dx = +1
    maps = displacement_maps(pre, post, GRID, weight=np.full(N, 0.2))
    expected = np.zeros((16, 16))
    expected[8, 9] = 1.0  # [dy = 0, dx = +1]
    np.testing.assert_array_equal(maps.probability, expected)
    assert maps.mean_weight[8, 9] == pytest.approx(0.2)
    assert np.isnan(maps.mean_weight[8, 8])
    dy, p, w = profile_dx0(maps)
    np.testing.assert_array_equal(dy, np.arange(-8, 8))
    np.testing.assert_array_equal(p, 0.0)
    assert np.isnan(w).all()


def test_displacement_on_rectangular_grid_and_multapses_and_autapses():
    grid = (4, 6)
    ids = np.arange(24)
    pre = ids
    post = (ids // 6 + 1) % 4 * 6 + ids % 6  # dy = +1
    pre = np.concatenate([pre, pre[:3]])  # three multapses
    post = np.concatenate([post, post[:3]])
    maps = displacement_maps(pre, post, grid)
    assert maps.probability.shape == (4, 6)
    np.testing.assert_array_equal(maps.dx, np.arange(-3, 3))
    np.testing.assert_array_equal(maps.dy, np.arange(-2, 2))
    assert maps.probability[3, 3] == 1.0 and maps.probability.sum() == 1.0  # multapse counts once
    assert np.isnan(maps.mean_weight).all()
    self_maps = displacement_maps(ids, ids, grid, autapses=False)
    assert np.isnan(self_maps.probability[2, 3])
    assert np.nansum(self_maps.probability) == 0.0


# --- timeline ----------------------------------------------------------------------------------


def test_connectivity_timeline_records_derived_statistics():
    tl = ConnectivityTimeline(GRID, feedforward=True, name="src->tgt")
    ids = np.arange(N)
    tl.add(0.0, ids, ids, np.full(N, 0.2))  # ideal map
    shifted = (ids // 16) * 16 + (ids % 16 + 1) % 16
    pre = np.concatenate([ids, shifted])
    post = np.concatenate([ids, ids])
    tl.add(1.0, pre, post, np.concatenate([np.full(N, 0.2), np.full(N, 0.05)]))
    tl.add(2.0, pre, post)  # no weights: by-weight measures nan
    a = tl.arrays()
    assert len(tl) == 3 and "snapshots=3" in repr(tl)
    np.testing.assert_allclose(a["t_ms"], [0, 1, 2])
    np.testing.assert_allclose(a["in_mean"], [1, 2, 2])
    np.testing.assert_allclose(a["in_sd"], 0.0)
    np.testing.assert_allclose(a["ad_conn"], [0.0, 0.5, 0.5], atol=1e-9)
    np.testing.assert_allclose(a["sigma_aff_conn"], [0.0, 0.25, 0.25], atol=1e-9)
    assert a["ad_weight"][1] == pytest.approx(0.2, abs=1e-9)  # 0.05 / 0.25 -> centre x + 0.2
    assert np.isnan(a["ad_weight"][2])
    assert a["p_dx0"].shape == (3, 16) and a["w_dx0"].shape == (3, 16)
    np.testing.assert_array_equal(a["dy"], np.arange(-8, 8))
    np.testing.assert_allclose(a["p_dx0"][:, 8], 1.0)
    np.testing.assert_allclose(a["w_dx0"][:2, 8], 0.2)
    assert tl.initial_maps.probability[8, 7] == 0.0 and tl.final_maps.probability[8, 7] == 1.0
    with pytest.raises(ValueError, match="t_ms must not decrease"):
        tl.add(1.5, pre, post)


def test_lateral_timeline_skips_map_quality():
    tl = ConnectivityTimeline(GRID, autapses=False)
    tl.add(0.0, [0, 1], [1, 0], [0.2, 0.2])
    a = tl.arrays()
    assert np.isnan(a["ad_conn"]).all() and a["nnz"][0] == 2
    assert a["out_mean"][0] == pytest.approx(2 / N)
