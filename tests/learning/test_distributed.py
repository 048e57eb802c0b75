"""Data-parallel e-prop (``neurowire.learning.distributed``): the batch split, clear errors, two
gloo ranks equal one process, and ``neurowire classify`` under torchrun.

Equality setting (``distributed_worker.py``): float64, 5 inputs -> 8 ALIF -> 3 outputs, 40 steps,
DEEP R on the sparse input and recurrent projections (13 and 17 synapses rewired over the run),
rate regulariser; 9 batches (2 epochs of 6, 6, 6, 4 trials, one uneven batch of 7 trials), then
an evaluation whose last batch has 1 trial. The two ranks run chunks of 2 trials with the
regulariser unfolded, or one chunk each with the spike counts summed between the forward and
backward pass and the regulariser folded; the one-process reference runs each batch as one chunk
with the regulariser folded into the backward pass, so the two differ by rounding only: measured
up to 4e-14 relative (Adam moments), asserted ``rtol = atol = 1e-12``. Connectivity, DEEP R's
sign bits and the rewiring log must be identical, and the two ranks' states bit for bit
identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import distributed_worker as worker
import pytest
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

import neurowire as nw
from neurowire.experiments import classify
from neurowire.io import PARTIAL_PREFIX, load_checkpoint
from neurowire.learning import distributed

WORKER = Path(worker.__file__)
RTOL = ATOL = 1e-12


def torchrun(*args: str, nproc: int = 2, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc-per-node", str(nproc), str(WORKER), *args]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr[-4000:]
    return run


@pytest.fixture
def no_torchrun(monkeypatch):
    for name in distributed.ENV_VARS:
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------------- batch split
@pytest.mark.parametrize(("batch", "world"), [(8, 2), (7, 2), (32, 3), (5, 5), (64, 7)])
def test_shards_cover_the_batch_in_rank_order_and_differ_by_at_most_one(batch, world):
    shards = [distributed.shard(batch, r, world) for r in range(world)]
    assert shards[0].start == 0 and shards[-1].stop == batch
    assert all(a.stop == b.start for a, b in zip(shards, shards[1:], strict=False))
    sizes = [s.stop - s.start for s in shards]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_shard_of_seven_trials_over_two_ranks():
    assert distributed.shard(7, 0, 2) == slice(0, 3)
    assert distributed.shard(7, 1, 2) == slice(3, 7)


def test_a_batch_smaller_than_the_world_is_refused_unless_empty_shards_are_allowed():
    with pytest.raises(ValueError, match="batch of 3 trials cannot be split over 4 ranks"):
        distributed.shard(3, 0, 4)
    assert distributed.shard(1, 1, 2, allow_empty=True) == slice(0, 1)
    assert distributed.shard(1, 0, 2, allow_empty=True) == slice(0, 0)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((4, 2, 2), ValueError, "0 <= rank < world"),
        ((4, -1, 2), ValueError, "rank -1"),
        ((4.0, 0, 2), TypeError, "batch must be an int"),
        ((-1, 0, 1), ValueError, "batch"),
    ],
)
def test_shard_rejects_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        distributed.shard(*args)


def test_check_batches_finds_a_last_batch_smaller_than_the_world():
    ds = worker.data(22, 0)  # batches of 6: 6, 6, 6, 4
    distributed.check_batches(ds, 6, 4)
    with pytest.raises(ValueError, match="22 samples in batches of 6 give a batch of 4 trials"):
        distributed.check_batches(ds, 6, 5)
    distributed.check_batches(ds.batches(6, drop_last=True), 6, 5)
    with pytest.raises(ValueError, match="batch of 2 trials"):
        distributed.check_batches(ds.batches(2), 6, 3)
    distributed.check_batches([(ds.spikes[:1], ds.labels[:1])], 6, 2)  # checked per batch


def test_check_batches_refuses_a_distributed_sampler():
    ds = worker.data(8, 0)
    loader = DataLoader(ds, batch_size=4, sampler=DistributedSampler(ds, num_replicas=2, rank=0))
    with pytest.raises(ValueError, match="DistributedSampler"):
        distributed.check_batches(loader, 4, 2)


# ---------------------------------------------------------------------- set-up and errors
def test_without_torchrun_nothing_changes(no_torchrun):
    assert distributed.init_process_group() is False
    assert not distributed.is_active() and distributed.rank() == 0
    tr = worker.trainer()
    assert (tr.rank, tr.world_size) == (0, 1)
    assert distributed.local_device("cuda:0") == torch.device("cuda:0")


def test_partial_torchrun_variables_are_named(no_torchrun, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="LOCAL_RANK, MASTER_ADDR, MASTER_PORT are not set"):
        distributed.init_process_group()


def test_local_device_gives_each_worker_its_gpu_and_refuses_a_shared_one(no_torchrun, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.local_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="would put them all on one GPU"):
        distributed.local_device("cuda:0")
    if torch.cuda.device_count() < 2:
        with pytest.raises(ValueError, match="LOCAL_RANK=1 but this node has"):
            distributed.local_device("cuda")
    else:
        assert distributed.local_device("cuda") == torch.device("cuda", 1)


def test_classify_with_partial_torchrun_variables_exits_with_one_line(
    no_torchrun, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit) as err:
        classify.main(["--dataset", "patterns", "--out", str(tmp_path / "run")])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "RANK" in lines[0] and "torchrun" in lines[0]
    assert not (tmp_path / "run").exists()


def tiny_trainer(**kwargs) -> nw.EProp:
    net = nw.Network(dt=1.0, seed=0, dtype=torch.float64)
    inp = net.population("input", nw.SpikeSource(2))
    hid = net.population("hidden", nw.LIF(3))
    out = net.population("output", nw.LeakyIntegrator(2))
    net.connect(inp, hid, nw.Dense(), weight=0.5)
    net.connect(hid, out, nw.Dense(), weight=0.5)
    return nw.EProp(net, out, engine="torch", **kwargs)


def test_distributed_true_without_a_process_group_raises(no_torchrun):
    with pytest.raises(ValueError, match="distributed=True needs an initialised"):
        tiny_trainer(distributed=True)
    with pytest.raises(TypeError, match="distributed must be None, True or False"):
        tiny_trainer(distributed=1)
    assert tiny_trainer(distributed=False).world_size == 1


def test_state_digest_sees_one_bit():
    state = {"a": torch.tensor([1.0, 2.0], dtype=torch.float64), "b": [3, "x"]}
    same = {"b": [3, "x"], "a": torch.tensor([1.0, 2.0], dtype=torch.float64)}
    assert distributed.state_digest(state) == distributed.state_digest(same)
    other = {"a": torch.tensor([1.0, 2.0 + 2**-51], dtype=torch.float64), "b": [3, "x"]}
    assert distributed.state_digest(state) != distributed.state_digest(other)
    assert distributed.state_digest(state) != distributed.state_digest({**state, "b": [3, "y"]})


# ---------------------------------------------------------------------- two ranks vs one
def assert_states_match(ref: dict, got: dict) -> None:
    """Connectivity, sign bits, logs and counters identical; floats to RTOL/ATOL (live slots)."""
    close = dict(rtol=RTOL, atol=ATOL)
    assert set(ref["projections"]) == set(got["projections"])
    for name, entry in ref["projections"].items():
        other = got["projections"][name]
        if "store" not in entry:
            torch.testing.assert_close(other["weight"], entry["weight"], **close)
            continue
        a, b = entry["store"], other["store"]
        assert torch.equal(a["row_length"], b["row_length"]), name
        live = torch.arange(a["ind"].shape[1]) < a["row_length"][:, None]
        assert torch.equal(a["ind"][live], b["ind"][live]), name
        assert set(a["vars"]) == set(b["vars"]) >= {"weight", "adam_m", "adam_v"}
        for var, val in a["vars"].items():
            if val.is_floating_point():
                torch.testing.assert_close(b["vars"][var][live], val[live], **close)
            else:
                assert torch.equal(b["vars"][var][live], val[live]), (name, var)
    torch.testing.assert_close(got["bias"], ref["bias"], **close)
    opt_a, opt_b = ref["optimizer"], got["optimizer"]
    assert opt_a["step_count"] == opt_b["step_count"] == ref["step_count"] == 9
    for name, st in opt_a["state"].items():
        for key, val in st.items():
            torch.testing.assert_close(opt_b["state"][name][key], val, **close)
    for key in ("rules", "rule_generators", "rule_rngs", "rewiring_log", "trained_ms"):
        assert distributed.state_digest(ref[key]) == distributed.state_digest(got[key]), key


@pytest.mark.parametrize(
    ("engine", "chunks"),
    [
        ("torch", "2"),
        ("native", "auto"),
        pytest.param("torch", "auto", marks=pytest.mark.slow),
        pytest.param("native", "2", marks=pytest.mark.slow),
    ],
)
def test_two_gloo_ranks_train_like_one_process_with_deep_r(engine, chunks, tmp_path, no_torchrun):
    torchrun("train", str(tmp_path), engine, chunks)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert distributed.state_digest(ranks[0]) == distributed.state_digest(ranks[1])

    torch.set_num_threads(1)
    ref = worker.trainer(engine)
    metrics = worker.schedule(ref)
    state = ref.state_dict()
    for name in ("input->hidden", "hidden->hidden"):
        assert ref.rewiring_log.totals(name)["removed"] > 5, name  # DEEP R did rewire
    assert_states_match(state, ranks[0]["state"])
    got = ranks[0]["metrics"]
    for a, b in zip(got["history"], metrics["history"], strict=True):
        assert a == pytest.approx(b, rel=RTOL)
    assert got["step"] == pytest.approx(metrics["step"], rel=RTOL)
    assert got["evaluate"] == pytest.approx(metrics["evaluate"], rel=RTOL)
    assert got["evaluate"]["trials"] == 9


# ---------------------------------------------------------------------- neurowire classify
CLASSIFY = [
    "--dataset", "patterns", "--hidden", "8", "--input-density", "0.4",
    "--recurrent-density", "0.4", "--deep-r", "--batch-size", "16", "--lr", "0.02",
    "--l1", "0.5", "--no-progress",
]  # fmt: skip


def test_classify_under_torchrun_writes_on_rank_0_only_and_resumes_on_one_process(
    tmp_path, no_torchrun, capsys
):
    probe, out = tmp_path / "probe", tmp_path / "out"
    probe.mkdir()
    torchrun("classify", str(probe), str(out), *CLASSIFY, "--epochs", "1")
    r0, r1 = (json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["status"] == r1["status"] == 0
    assert r1["writes"] == [] and r1["stdout"] == ""
    opened = [Path(w.split(" ", 1)[1]).name for w in r0["writes"] if w.startswith("open")]
    # written atomically: under a temporary name ".partial-<token>-<name>", then renamed
    written = {n.split("-", 2)[2] if n.startswith(PARTIAL_PREFIX) else n for n in opened}
    assert {"summary.json", "accuracy.png", "connectivity_deep_r.png"} <= written
    assert r0["stdout"].count("outputs in") == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["distributed"] == {"world_size": 2, "backend": "gloo"}
    first = summary["configurations"]["deep_r"]["history"]
    assert load_checkpoint(out / "checkpoints" / "deep_r.pt")["epoch"] == 1

    resumed = classify.main([*CLASSIFY, "--epochs", "2", "--resume", "--out", str(out)])
    assert resumed["distributed"] == {"world_size": 1, "backend": None}
    history = resumed["configurations"]["deep_r"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0] == first[0]
    assert resumed["configurations"]["deep_r"]["batches"] == 8  # 64 samples / 16, two epochs
    assert load_checkpoint(out / "checkpoints" / "deep_r.pt")["epoch"] == 2
