"""Synapse placement: channel information and rates, degrees of every projection form, the
before/after statistics and the figure, on constructed cases with a known answer."""

import math

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

import neurowire as nw
from neurowire.analysis import (
    channel_information,
    channel_rates,
    placement_report,
    placement_stats,
    plot_synapse_placement,
    synapses_per_post,
    synapses_per_pre,
    training,
    trial_counts,
)
from neurowire.data import SpikeDataset

N_CLASSES = 4
N_IN = 20
INFORMATIVE = np.arange(2)  # exactly the top decile of the 20 channels
N_TRIALS = 800
STEPS = 200
DT = 1.0  # ms
# spike probability per step of an informative channel in class c (mean counts 2, 60, 130, 190,
# neighbours at least 4.5 standard deviations from their midpoint, so no trial crosses it) and of
# every other channel (class-independent)
P_CLASS = np.array([0.01, 0.3, 0.65, 0.95])
P_FLAT = 0.3


def _task(seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(N_TRIALS) % N_CLASSES  # balanced: H(class) = log2(4) = 2 bits
    p = np.full((N_TRIALS, 1, N_IN), P_FLAT)
    p[:, 0, INFORMATIVE] = P_CLASS[labels][:, None]
    spikes = rng.random((N_TRIALS, STEPS, N_IN)) < p
    return torch.from_numpy(spikes), torch.from_numpy(labels)


@pytest.fixture(scope="module")
def task():
    return _task()


@pytest.fixture(scope="module")
def info(task):
    return channel_information(*task)


# ------------------------------------------------------------------------ channel information


def test_information_of_constructed_channels(task, info):
    spikes, labels = task
    assert info.shape == (N_IN,) and info.dtype == np.float64
    # informative channels separate the classes perfectly: I = H(class) = 2 bits (tolerance 0.02)
    np.testing.assert_allclose(info[INFORMATIVE], math.log2(N_CLASSES), atol=0.02)
    # the others: only the plug-in bias. Without information 2 N ln2 * I is about chi-squared
    # with (bins-1)(K-1) = 21 degrees of freedom: mean 21 / (2 N ln 2) = 0.019 bits (the first-
    # order bias), standard deviation sqrt(42) / (2 N ln 2) = 0.006 bits
    bias = 7 * 3 / (2 * N_TRIALS * math.log(2))
    sd = math.sqrt(2 * 7 * 3) / (2 * N_TRIALS * math.log(2))
    rest = np.delete(info, INFORMATIVE)
    assert np.all(rest >= 0) and rest.max() < bias + 5 * sd
    assert abs(rest.mean() - bias) < 2 * sd
    # bias-corrected estimates of the uninformative channels scatter around 0 (within 5 sd)
    for correction in ("miller_madow", "shuffle"):
        corrected = channel_information(spikes, labels, correction=correction)
        rest = np.delete(corrected, INFORMATIVE)
        assert np.abs(rest).max() < 5 * sd and abs(rest.mean()) < 2 * sd, correction
        # the shuffle subtracts the null bias (0.019 bits), more than a perfectly separating
        # channel's own: informative channels within 0.03 bits
        np.testing.assert_allclose(corrected[INFORMATIVE], math.log2(N_CLASSES), atol=0.03)


def test_information_from_dataset_batches_and_counts_agree(task, info):
    spikes, labels = task
    ds = SpikeDataset(spikes, labels)
    batches = [(spikes[i : i + 64], labels[i : i + 64]) for i in range(0, N_TRIALS, 64)]
    tc = trial_counts(ds)
    assert tc.counts.shape == (N_TRIALS, N_IN) and np.all(tc.steps == STEPS)
    np.testing.assert_array_equal(tc.counts, spikes.sum(1).numpy())
    for data in (ds, batches, iter(batches), tc):
        np.testing.assert_allclose(channel_information(data), info)
    np.testing.assert_allclose(channel_information(spikes.numpy().astype(np.uint8), labels), info)


def test_information_raw_counts_and_single_class():
    counts = np.array([[0, 3], [1, 3], [0, 3], [1, 3]])[:, None, :]  # [4, T=1, 2]
    labels = np.array([0, 1, 0, 1])
    info = channel_information(counts, labels, bins=None)
    np.testing.assert_allclose(info, [1.0, 0.0])
    np.testing.assert_allclose(channel_information(counts, np.zeros(4, int)), [0.0, 0.0])
    # an unused class does not change the plug-in value
    np.testing.assert_allclose(channel_information(counts, labels, n_classes=5), [1.0, 0.0])


def test_channel_rates(task):
    spikes, labels = task
    rate = channel_rates(spikes, dt=DT)
    expected = spikes.sum((0, 1)).numpy() / (N_TRIALS * STEPS * DT / 1000.0)
    np.testing.assert_allclose(rate, expected)
    assert abs(np.delete(rate, INFORMATIVE).mean() - P_FLAT / DT * 1000) < 3  # ~300 Hz
    np.testing.assert_allclose(channel_rates(SpikeDataset(spikes, labels), dt=DT), rate)
    np.testing.assert_allclose(channel_rates(spikes, dt=2.0), rate / 2)


# ------------------------------------------------------------------------ degrees


def _three_forms(rng, n_pre=12, n_post=9, n_syn=40):
    flat = rng.choice(n_pre * n_post, n_syn, replace=False)
    pre, post = flat // n_post, flat % n_post
    w = rng.normal(size=n_syn).astype(np.float32)
    w[w == 0] = 1.0
    store = nw.RaggedSynapses.from_coo(n_pre, n_post, pre, post, weight=torch.from_numpy(w))
    dense = np.zeros((n_pre, n_post), np.float32)
    dense[pre, post] = w
    return store, (pre, post, n_pre, n_post), dense, pre, post


def test_degrees_agree_across_forms():
    store, coo, dense, pre, post = _three_forms(np.random.default_rng(1))
    want_pre = np.bincount(pre, minlength=12)
    want_post = np.bincount(post, minlength=9)
    np.testing.assert_array_equal(store.row_length.numpy(), want_pre)
    for form in (store, coo, dense, torch.from_numpy(dense), store.dense("weight")):
        np.testing.assert_array_equal(synapses_per_pre(form), want_pre)
        np.testing.assert_array_equal(synapses_per_post(form), want_post)


def test_recurrent_forms_exclude_self_connections():
    rng = np.random.default_rng(2)
    n = 10
    flat = rng.choice(n * n, 45, replace=False)
    pre, post = flat // n, flat % n
    keep = pre != post
    store = nw.RaggedSynapses.from_coo(n, n, pre[keep], post[keep], autapses=False, weight=0.5)
    dense = rng.normal(size=(n, n))  # a dense recurrent matrix: diagonal set but masked
    dense[pre[keep], post[keep]] = 1.0
    mask = np.zeros((n, n), bool)
    mask[pre[keep], post[keep]] = True
    dense[~mask & ~np.eye(n, dtype=bool)] = 0.0
    want_pre = np.bincount(pre[keep], minlength=n)
    want_post = np.bincount(post[keep], minlength=n)
    for form in (store, (pre, post, n, n), dense):
        np.testing.assert_array_equal(synapses_per_pre(form, recurrent=True), want_pre)
        np.testing.assert_array_equal(synapses_per_post(form, recurrent=True), want_post)
    assert synapses_per_pre(dense).sum() == want_pre.sum() + n  # the diagonal counted without


# ------------------------------------------------------------------------ placement statistics


def _on_channels(channels, per_channel=6, n_post=30):
    pre = np.repeat(channels, per_channel)
    post = np.concatenate([np.arange(per_channel) + 3 * i for i in range(len(channels))]) % n_post
    return (pre, post, N_IN, n_post)


def test_placement_on_informative_channels(info):
    on_info = _on_channels(INFORMATIVE)
    on_rest = _on_channels(np.arange(2, N_IN))
    good = placement_stats(on_info, info)
    assert good.rho > 0.4 and good.p_value < 0.05  # 2 of 20 used, 18 tied at 0: rho 0.52
    assert good.top_share == 1.0 and good.n_synapses == 12
    assert good.n_top == 2 and good.chance_share == 0.1
    bad = placement_stats(on_rest, info)
    assert bad.rho < -0.4 and bad.top_share == 0.0

    rate = np.linspace(1.0, 20.0, N_IN)  # channel 19 the most active
    report = placement_report(on_rest, on_info, information=info, rate=rate)
    assert report.information_before.rho < 0 < report.information_after.rho
    assert report.information_after.top_share == 1.0
    assert report.information_before.top_share == 0.0
    # before: 6 synapses on each of channels 2..19, so 12 of 108 on the 2 most active (18, 19)
    assert report.rate_before.top_share == pytest.approx(12 / 108) and report.rate_before.rho > 0
    assert report.rate_after.top_share == 0.0 and report.rate_after.rho < 0
    assert report.recurrent_before is None and report.top_fraction == 0.1
    assert report.to_dict()["information_after"]["top_share"] == 1.0


def test_placement_constant_degree_and_recurrent():
    uniform = (np.arange(N_IN), np.zeros(N_IN, int), N_IN, 1)
    st = placement_stats(uniform, np.arange(N_IN, dtype=float))
    assert math.isnan(st.rho) and st.top_share == pytest.approx(2 / N_IN)

    n = 8
    hidden_rate = np.arange(n, dtype=float)  # neuron 7 fires most
    before = np.ones((n, n))  # dense recurrent: every neuron 7 outgoing synapses
    after = np.zeros((n, n))
    after[np.arange(4, n)] = 1.0  # only the 4 most active neurons project
    report = placement_report(
        before,
        before,
        rate=np.ones(n),
        recurrent_before=before,
        recurrent_after=after,
        hidden_rate=hidden_rate,
    )
    assert report.recurrent_before.n_synapses == n * (n - 1)
    assert math.isnan(report.recurrent_before.rho)
    assert report.recurrent_after.rho > 0.8 and report.recurrent_after.top_share == 0.25


# ------------------------------------------------------------------------ errors


def test_errors_name_the_argument(task):
    spikes, labels = task
    with pytest.raises(ValueError, match="labels must have shape"):
        channel_information(spikes, labels[:-1])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, n_classes=3\)"):
        channel_information(spikes, labels, n_classes=3)
    with pytest.raises(ValueError, match="labels must be class ids >= 0"):
        channel_information(spikes, labels - 1)
    with pytest.raises(ValueError, match="spikes must be"):
        channel_information(spikes[0], labels)
    with pytest.raises(ValueError, match="labels are needed"):
        channel_information(spikes)
    with pytest.raises(ValueError, match="bins must be"):
        channel_information(spikes, labels, bins=1)
    with pytest.raises(ValueError, match="correction must be"):
        channel_information(spikes, labels, correction="jackknife")
    with pytest.raises(ValueError, match="dt must be"):
        channel_rates(spikes, dt=0)
    with pytest.raises(ValueError, match="spikes must hold finite, non-negative"):
        channel_rates(-spikes.to(torch.int8), dt=1.0)
    with pytest.raises(ValueError, match="label shape"):
        trial_counts(SpikeDataset(spikes[:4], torch.zeros(4, STEPS, 2)))
    with pytest.raises(ValueError, match="labels must be None"):
        trial_counts(SpikeDataset(spikes[:4], labels[:4]), labels[:4])
    with pytest.raises(ValueError, match="information must have shape"):
        placement_report(_on_channels(INFORMATIVE), _on_channels(INFORMATIVE), np.zeros(N_IN - 1))
    with pytest.raises(ValueError, match="hidden_rate"):
        placement_report(
            _on_channels(INFORMATIVE),
            _on_channels(INFORMATIVE),
            np.zeros(N_IN),
            recurrent_before=np.ones((3, 3)),
            recurrent_after=np.ones((3, 3)),
        )
    with pytest.raises(ValueError, match="top_fraction"):
        placement_stats(_on_channels(INFORMATIVE), np.zeros(N_IN), top_fraction=0)
    with pytest.raises(ValueError, match="recurrent=True needs a square"):
        synapses_per_pre(np.ones((3, 4)), recurrent=True)
    with pytest.raises(ValueError, match=r"projection post must lie in \[0, 4\)"):
        synapses_per_pre(([0, 1], [1, 4], 3, 4))
    with pytest.raises(ValueError, match="projection as a dense matrix"):
        synapses_per_pre(np.ones(3))


# ------------------------------------------------------------------------ figure


def test_plot_synapse_placement_writes_png(tmp_path, task, info, monkeypatch):
    drawn = []  # per saved figure, per axes: title, labels and the scatter points
    real = training.save_figure

    def record(fig, path):
        drawn.extend(
            (
                ax.get_title(),
                ax.get_xlabel(),
                ax.get_ylabel(),
                [np.asarray(c.get_offsets()) for c in ax.collections],
            )
            for ax in fig.axes
        )
        return real(fig, path)

    monkeypatch.setattr(training, "save_figure", record)
    rate = channel_rates(task[0], dt=DT)
    n = 8
    rec_b = np.ones((n, n))
    rec_a = np.zeros((n, n))
    rec_a[4:] = 1.0
    out = plot_synapse_placement(
        _on_channels(np.arange(2, N_IN)),
        _on_channels(INFORMATIVE),
        tmp_path / "sub" / "placement.png",
        information=info,
        rate=rate,
        recurrent_before=rec_b,
        recurrent_after=rec_a,
        hidden_rate=np.arange(n, dtype=float),
    )
    assert out == tmp_path / "sub" / "placement.png"
    img = mpimg.imread(out)
    assert img.shape[:2] == (450, 1500)  # three 5 x 4.5 in panels side by side, 100 dpi
    assert img[..., :3].std() > 0.01  # not blank
    assert [(title, x) for title, x, _, _ in drawn] == [
        (
            "input synapses vs channel information",
            "channel information I(spike count; class) [bits]",
        ),
        ("input synapses vs channel rate", "channel rate [Hz]"),
        ("recurrent synapses vs hidden rate", "hidden neuron rate [Hz]"),
    ]
    on_info = np.isin(np.arange(N_IN), INFORMATIVE)
    for (_, _, ylabel, (before, after)), score in zip(drawn[:2], (info, rate), strict=True):
        assert ylabel == "input synapses per channel"
        np.testing.assert_allclose(before[:, 0], score)  # one point per channel at its score
        np.testing.assert_allclose(after[:, 0], score)
        assert before[:, 1].tolist() == np.where(on_info, 0, 6).tolist()
        assert after[:, 1].tolist() == np.where(on_info, 6, 0).tolist()
    _, _, _, (before, after) = drawn[2]  # outgoing recurrent synapses, self-connections not counted
    assert before[:, 0].tolist() == list(range(n))
    assert before[:, 1].tolist() == [n - 1] * n
    assert after[:, 1].tolist() == [0] * 4 + [n - 1] * 4
