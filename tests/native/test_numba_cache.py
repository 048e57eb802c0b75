"""numba's cache works on a read-only install with no writable home."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import neurowire
from neurowire.codegen import configure_numba_cache

SCRIPT = """
import os, neurowire as nw, torch
net = nw.Network(dt=1.0, seed=0)
src = net.population("src", nw.SpikeSource(3))
pop = net.population("p", nw.LIF(2))
net.connect(src, pop, nw.Dense(), weight=1.0)
sim = nw.Simulator(net, engine="native")
out = sim.run(4, record={"p": ["spikes"]}, inputs={"src": torch.ones(1, 4, 3, dtype=torch.bool)})
print("spikes", int(out["p"]["spikes"].sum()), "cache", os.environ.get("NUMBA_CACHE_DIR"))
"""


def test_importing_neurowire_does_not_import_numba():
    code = "import sys, neurowire; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cache_dir_is_left_alone_when_set_or_when_the_install_is_writable(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert configure_numba_cache(tmp_path) is None
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    assert configure_numba_cache(tmp_path) is None  # tmp_path/native/__pycache__ is writable
    assert "NUMBA_CACHE_DIR" not in os.environ


@pytest.mark.skipif(
    not hasattr(os, "getuid") or shutil.which("setpriv") is None, reason="needs setpriv"
)
def test_a_read_only_install_without_a_home_still_runs_the_native_engine(tmp_path):
    pytest.importorskip("numba")
    site = tmp_path / "site"
    shutil.copytree(
        Path(neurowire.__file__).parent,
        site / "neurowire",
        ignore=shutil.ignore_patterns("*.pyc", "__pycache__"),
    )
    for path in [site, *site.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": "/nonexistent",
        "PYTHONPATH": os.pathsep.join([str(site), *sys.path[1:]]),
    }
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    if os.getuid() != 0:
        cmd = [sys.executable]
    out = subprocess.run([*cmd, "-c", SCRIPT], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "spikes 6" in out.stdout and "cache None" not in out.stdout
