"""Shared fixtures: the devices and CPU engines a test runs on, a freshly seeded random generator,
and the hypothesis profiles.

Hypothesis profiles (chosen with the environment variable ``HYPOTHESIS_PROFILE``):

* ``quick`` (default): 25 examples per property test and no deadline, so that the quick tier
  (``pytest -m "not slow"``) stays fast;
* ``full``: 300 examples per property test, for a thorough run
  (``HYPOTHESIS_PROFILE=full pytest tests/test_synapses_properties.py``).

A test that pins ``max_examples`` in its own ``@settings`` overrides the profile's count.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch
from hypothesis import settings

HAVE_CUDA = torch.cuda.is_available()

#: every device a test of a device-independent code path runs on: CPU always, CUDA always listed
#: but skipped without a CUDA device (so the report shows the CUDA cases as skipped, not absent)
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[
            pytest.mark.skipif(not HAVE_CUDA, reason="needs a CUDA device"),
            pytest.mark.cuda,
        ],
    ),
]

HAVE_NUMBA = importlib.util.find_spec("numba") is not None

#: every CPU engine a step-semantics test runs on in the quick tier ("compile" is too slow to
#: compile on a CPU for every test; one small torch-vs-compile test covers it)
CPU_ENGINES = [
    pytest.param("torch", id="torch"),
    pytest.param(
        "native",
        id="native",
        marks=pytest.mark.skipif(not HAVE_NUMBA, reason="the native engine needs numba"),
    ),
]

settings.register_profile("quick", max_examples=25, deadline=None)
settings.register_profile("full", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Every device: ``cpu`` always, ``cuda`` (marked ``cuda``) skipped without a CUDA device.

    In a test that also runs on every ``engine``, the native engine's CUDA case is skipped: the
    native engine is a CPU engine (the torch engine runs on every device).
    """
    dev = torch.device(request.param)
    if dev.type != "cpu" and "engine" in request.fixturenames:
        if request.getfixturevalue("engine") == "native":
            pytest.skip("the native engine runs on the CPU only")
    return dev


@pytest.fixture(params=CPU_ENGINES)
def engine(request) -> str:
    """Every CPU engine of the quick tier: ``"torch"`` always, ``"native"`` when numba is
    installed (skipped otherwise)."""
    return request.param


@pytest.fixture
def generator(request) -> torch.Generator:
    """A ``torch.Generator`` seeded the same for every test.

    It lives on the test's ``device`` when the test also asks for that fixture, else on the CPU.
    Each test gets a fresh one, so a test's random draws never depend on the tests before it.
    """
    dev = request.getfixturevalue("device") if "device" in request.fixturenames else "cpu"
    return torch.Generator(device=dev).manual_seed(20251022)
