"""The e-prop engines: chosen once by name or given as objects, and modules without cycles."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import torch
from eprop_testnets import make_network, random_input

import neurowire.learning as learning
from neurowire.learning import EProp
from neurowire.learning.engine import EPropEngine, resolve_engine
from neurowire.learning.engines import TorchEngine

PACKAGE = Path(learning.__file__).parent
#: the kernel modules and the shared types they read: none imports the layers above
LEAVES = {"tables", "engine", "segments", "native", "triton", "compiled", "losses"}


def module_imports() -> dict[str, set[str]]:
    """Per module of the learning package, the sibling modules it imports at import time."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        deps = set()
        for node in tree.body:  # top level only: imports inside functions run later
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps.update(alias.name for alias in node.names)
        graph[path.stem] = deps
    return graph


def test_the_learning_modules_import_without_cycles():
    graph = module_imports()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        for dep in graph.get(name, ()):
            visit(dep, (*path, name))

    for name in graph:
        visit(name, ())


def test_kernels_import_nothing_above_them():
    graph = module_imports()
    for name in ("tables", "engine", "segments", "native", "triton"):
        above = graph[name] - LEAVES
        assert not above, f"{name} imports {sorted(above)}"


@pytest.mark.parametrize("name", ["tables", "engine", "engines", "forward", "factorized"])
def test_each_module_imports_alone(name):
    importlib.import_module(f"neurowire.learning.{name}")


def test_names_resolve_to_engine_objects():
    cpu = torch.device("cpu")
    assert isinstance(resolve_engine("torch", cpu), TorchEngine)
    assert resolve_engine("auto", cpu).name in ("native", "torch")
    engine = TorchEngine()
    assert resolve_engine(engine, cpu) is engine
    with pytest.raises(TypeError, match="EPropEngine"):
        resolve_engine(object(), cpu)


def test_an_engine_object_gives_the_gradients_of_its_name():
    x, labels = random_input(3, 20, 5, seed=2)
    grads = {}
    for engine in ("torch", TorchEngine()):
        net, out = make_network("alif", sparse=True)
        trainer = EProp(net, out, engine=engine)
        assert trainer.engine == "torch" and isinstance(trainer._engine, EPropEngine)
        grads[isinstance(engine, str)] = trainer.compute_gradients(x, labels)
    for name, g in grads[True].items():
        assert torch.equal(grads[False][name], g), name
