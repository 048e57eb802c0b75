"""Shared fixtures: the devices a test runs on and a freshly seeded random generator."""

from __future__ import annotations

import pytest
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Every available device: CPU always, CUDA when present."""
    return torch.device(request.param)


@pytest.fixture
def generator(request) -> torch.Generator:
    """A ``torch.Generator`` seeded the same for every test.

    It lives on the test's ``device`` when the test also asks for that fixture, else on the CPU.
    Each test gets a fresh one, so a test's random draws never depend on the tests before it.
    """
    dev = request.getfixturevalue("device") if "device" in request.fixturenames else "cpu"
    return torch.Generator(device=dev).manual_seed(20251022)
