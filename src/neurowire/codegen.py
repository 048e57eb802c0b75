"""The model language: one definition of a model's update, run eagerly or translated to code.

A neuron, postsynaptic or plasticity model writes its update once, as a Python method over
*elementwise* values (DESIGN.md, "one definition per concept")::

    def update(self, s, c, i_syn):
        refractory = s.r > 0
        s.v = c.alpha * s.v + i_syn - c.v_th * s.z
        s.z = spike(s.v - c.v_th, refractory)
        s.r = where(s.z, c.n_ref, maximum(s.r - 1, 0))

``s`` holds the state variables, ``c`` the constants of one step (decay factors from ``dt``,
thresholds, per-neuron parameters such as a readout bias), the remaining arguments are inputs
(``i_syn``, ``rand``, ``w_sum``, ``v``). Inside, only arithmetic, comparisons, ``&``, ``|``,
``~`` on booleans and the functions of this module are allowed, plus ``if`` on constants (a
model's configuration, decided when code is generated). ``s.z`` read before it is assigned is
the previous step's spikes as 0/1 numbers; ``s.z = spike(distance, refractory)`` is the spike
test, ``distance > 0`` and not ``refractory``; e-prop reads its two arguments for the
pseudo-derivative.

Three targets derive from the method:

* **eager**: the method runs as it is on ``[B, n]`` tensors (:class:`TorchState`) with the
  PyTorch versions of the functions below; this is the reference every engine is tested against.
* **scalar**: :func:`translate` parses the method (``ast``) and writes the same statements as
  scalar Python for numba, one neuron (or synapse) at a time: ``s.v`` becomes a local, ``c.x`` a
  typed literal (or an indexed array for per-neuron parameters), ``where`` a conditional
  expression, ``~`` ``not``; ``&`` and ``|`` stay bitwise, as in PyTorch (on booleans the
  logical operation without a branch, so numba can vectorise the loop). The native simulator
  and the native e-prop forward pass wrap these lines in their own loops
  (:mod:`neurowire.native.codegen`).
* **triton**: the same :func:`translate` with ``Scalar(target="triton")`` writes the statements
  over whole blocks of neurons for a ``@triton.jit`` kernel: names are vectors (loaded state,
  inputs, per-neuron arrays), constants untyped literals (Triton gives them the dtype of the
  vector they meet), ``where`` ``tl.where`` on a boolean test, ``maximum``/``minimum``/``clip``
  ``tl.maximum``/``tl.minimum``, ``exp`` ``tl.exp``, ``absolute`` ``tl.abs``, ``~`` a comparison
  with 0 (valid on int1 vectors); ``**`` has no Triton form and is refused.
  :mod:`neurowire.learning.triton` wraps these lines in its kernels.

:func:`generated_module` writes generated source to a file in a cache directory and imports it,
so numba can cache its compiled functions and the source can be read
(``Simulator.generated_source()``).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import math
import os
import sys
import tempfile
import textwrap
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

FUNCTIONS = ("where", "maximum", "minimum", "clip", "exp", "absolute", "spike")


# ---------------------------------------------------------------------- eager (torch) functions
def _as_bool(cond: Tensor) -> Tensor:
    return cond if cond.dtype == torch.bool else cond != 0


def where(cond: Tensor, a: Any, b: Any) -> Tensor:
    """``a`` where ``cond`` holds, else ``b`` (elementwise)."""
    return torch.where(_as_bool(cond), a, b)


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum; either argument may be a number."""
    if not isinstance(b, Tensor):
        return torch.clamp(a, min=b)
    if not isinstance(a, Tensor):
        return torch.clamp(b, min=a)
    return torch.maximum(a, b)


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum; either argument may be a number."""
    if not isinstance(b, Tensor):
        return torch.clamp(a, max=b)
    if not isinstance(a, Tensor):
        return torch.clamp(b, max=a)
    return torch.minimum(a, b)


def clip(x: Tensor, low: float, high: float) -> Tensor:
    """``min(max(x, low), high)`` with numbers ``low <= high``."""
    return torch.clamp(x, low, high)


def exp(x: Any) -> Any:
    return torch.exp(x) if isinstance(x, Tensor) else math.exp(x)


def absolute(x: Any) -> Any:
    """Elementwise ``|x|``."""
    return torch.abs(x) if isinstance(x, Tensor) else abs(x)


#: while set (by :func:`recording_spike_tests`), every :func:`spike` call appends its arguments
_SPIKE_TESTS: list | None = None


def spike(distance: Tensor, refractory: Tensor | bool) -> Tensor:
    """Spike test ``distance > 0`` and not ``refractory``; ``distance`` is ``v - threshold``."""
    if _SPIKE_TESTS is not None:
        _SPIKE_TESTS.append((distance, refractory))
    z = distance > 0
    if isinstance(refractory, Tensor):
        return z & ~refractory
    return z & (not refractory)


@contextmanager
def recording_spike_tests() -> Iterator[list]:
    """Collect ``(distance, refractory)`` of every :func:`spike` call in the block (what the
    e-prop forward pass needs for the pseudo-derivative)."""
    global _SPIKE_TESTS
    old, _SPIKE_TESTS = _SPIKE_TESTS, []
    try:
        yield _SPIKE_TESTS
    finally:
        _SPIKE_TESTS = old


class Definition:
    """Mixin of model classes: :meth:`constants` per ``dt``, cached on the (frozen) instance."""

    def constants(self, dt: float) -> dict[str, Any]:
        """Numbers the update reads as ``c.<name>`` for a step of ``dt`` ms."""
        return {}

    def cached_constants(self, dt: float) -> dict[str, Any]:
        """:meth:`constants` for ``dt``, computed once per model and ``dt``."""
        cache = self.__dict__.setdefault("_nw_constants", {})
        if dt not in cache:
            cache[dt] = self.constants(dt)
        return cache[dt]

    def constants_for(self, dt: float) -> Constants:
        """:meth:`cached_constants` as the namespace ``c`` the model's methods read, made once
        per model and ``dt`` (callers must not change it)."""
        cache = self.__dict__.setdefault("_nw_constants_ns", {})
        if dt not in cache:
            cache[dt] = Constants(self.cached_constants(dt))
        return cache[dt]


class Constants:
    """Attribute access to the constants of one step (``c.alpha``); values are numbers or
    per-neuron tensors ``[n]``."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Constants({self.__dict__})"


class TorchState:
    """State of one eager update: ``s.v`` reads and writes ``[B, n]`` tensors.

    ``z`` starts as the previous spikes as numbers of ``dtype`` (the model language's rule).
    """

    def __init__(self, values: Mapping[str, Tensor], dtype: torch.dtype) -> None:
        self.__dict__.update(values)
        self.z = values["z"].to(dtype)

    def values(self, like: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The updated variables, cast back to the dtypes of ``like``."""
        out = {}
        for name, old in like.items():
            new = self.__dict__[name]
            out[name] = new if new.dtype == old.dtype else new.to(old.dtype)
        return out


# ---------------------------------------------------------------------- composite updates
@dataclass(frozen=True)
class Stage:
    """One part of a composite update: the model-language method ``method`` of ``definition``.

    A model whose ``stages`` attribute lists stages has an update made of them, in order: the
    eager update runs them (:func:`run_stages`) and :func:`translate` joins their translations,
    so each part keeps its one definition (a neuron's equations, a calcium trace beside them).

    Args:
        definition: the object whose method runs (a model, or a part of one).
        method: the method's name; it takes ``(s, c, *inputs)``.
        state: the method's ``s.<name>`` -> the composite's state variable it reads and writes.
        inputs: names of the composite's inputs passed on (``"i_syn"``, ``"rand"``).
        key: the method reads the composite's constants named ``"<key>.<name>"`` as
            ``c.<name>`` (:func:`stage_constants`); ``""``: the composite's unprefixed ones and
            its per-neuron parameters.
        float_type: numpy type of this stage's float literals (None: the composite's).
    """

    definition: Any
    method: str
    state: Mapping[str, str]
    inputs: tuple[str, ...] = ()
    key: str = ""
    float_type: str | None = None


def stage_constants(constants: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The constants of the stage with ``key`` among a composite's ``constants`` (see
    :class:`Stage`)."""
    if not key:
        return {k: v for k, v in constants.items() if "." not in k}
    head = f"{key}."
    return {k[len(head) :]: v for k, v in constants.items() if k.startswith(head)}


class _RenamedState:
    """A stage's view of the composite's eager state: ``s.<name>`` is ``target.<names[name]>``."""

    def __init__(self, target: Any, names: Mapping[str, str]) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_names", names)

    def _name(self, name: str) -> str:
        try:
            return self._names[name]
        except KeyError:
            raise AttributeError(f"this stage's state has no variable {name!r}") from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, self._name(name))

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, self._name(name), value)


def run_stages(
    stages: tuple[Stage, ...], s: TorchState, c: Constants, inputs: Mapping[str, Any]
) -> None:
    """The eager update of a composite: every stage's method on ``s`` in order."""
    for stage in stages:
        consts = c if not stage.key else Constants(stage_constants(c.__dict__, stage.key))
        identity = all(k == v for k, v in stage.state.items())
        view = s if identity else _RenamedState(s, stage.state)
        getattr(stage.definition, stage.method)(view, consts, *(inputs[n] for n in stage.inputs))


# ---------------------------------------------------------------------- translation to scalars
class ModelCodeError(TypeError):
    """A model's update uses something the scalar translation cannot express."""


@dataclass
class Scalar:
    """How the names of an update map to scalar code.

    ``state``: loaded state variables (read names); ``inputs``: input argument -> scalar
    expression (``"i_syn[b, i]"``); ``constants``: name -> number (written as literals);
    ``arrays``: constant name -> scalar expression for per-neuron arrays (``"bias[i]"``);
    ``float_type``: numpy type name for float literals (``"float32"``); ``target``:
    ``"numba"`` (scalar statements) or ``"triton"`` (statements on vectors of a Triton kernel);
    ``bound``: state variable -> the scalar name holding its value when the method starts
    (default ``<prefix><name>_0``, which the caller loads).
    """

    state: Mapping[str, str]
    inputs: Mapping[str, str]
    constants: Mapping[str, Any]
    arrays: Mapping[str, str] = field(default_factory=dict)
    float_type: str = "float64"
    target: str = "numba"
    bound: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Translation:
    """Scalar code of one update: ``lines``, the final name of every written state variable
    (``assigned``), the return expression (``result``) and, if the update called
    :func:`spike`, the names holding its distance and refractory flag."""

    lines: list[str]
    assigned: dict[str, str]
    result: str | None = None
    distance: str | None = None
    refractory: str | None = None


def method_ast(fn: Callable) -> ast.FunctionDef:
    """The parsed definition of a model method."""
    try:
        src = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as err:
        raise ModelCodeError(f"cannot read the source of {fn.__qualname__}: {err}") from None
    tree = ast.parse(src)
    node = tree.body[0]
    if not isinstance(node, ast.FunctionDef):
        raise ModelCodeError(f"{fn.__qualname__} is not a plain function definition")
    return node


#: per target: the model language's functions as format strings of their arguments, and ``not``
_CALLS = {
    "numba": {
        "where": "({1} if {0} else {2})",
        "maximum": "max({0}, {1})",
        "minimum": "min({0}, {1})",
        "clip": "min(max({0}, {1}), {2})",
        "exp": "math.exp({0})",
        "absolute": "abs({0})",
    },
    "triton": {
        "where": "tl.where({0} != 0, {1}, {2})",
        "maximum": "tl.maximum({0}, {1})",
        "minimum": "tl.minimum({0}, {1})",
        "clip": "tl.minimum(tl.maximum({0}, {1}), {2})",
        "exp": "tl.exp({0})",
        "absolute": "tl.abs({0})",
    },
}
_ARITY = {"where": 3, "maximum": 2, "minimum": 2, "clip": 3, "exp": 1, "absolute": 1}
_NOT = {"numba": "(not {0})", "triton": "({0} == 0)"}


class _Translator(ast.NodeTransformer):
    def __init__(self, model: Any, spec: Scalar, prefix: str, where: str) -> None:
        self.model, self.spec, self.prefix, self.where = model, spec, prefix, where
        if spec.target not in _CALLS:
            raise ValueError(f"target must be one of {tuple(_CALLS)}, got {spec.target!r}")
        self.calls, self.negation = _CALLS[spec.target], _NOT[spec.target]
        self.current = {name: spec.bound.get(name, f"{prefix}{name}_0") for name in spec.state}
        self.versions = dict.fromkeys(spec.state, 0)
        self.locals: dict[str, str] = {}
        self.lines: list[str] = []
        self.result: str | None = None
        self.distance: str | None = None
        self.refractory: str | None = None

    def fail(self, node: ast.AST, what: str) -> ModelCodeError:
        return ModelCodeError(f"{self.where}, line {getattr(node, 'lineno', '?')}: {what}")

    # ---------------------------------------------------------------- expressions
    def expr(self, node: ast.expr) -> str:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                return repr(node.value)
            if isinstance(node.value, int):
                return repr(node.value)
            if isinstance(node.value, float):
                return self.literal(node.value)
            raise self.fail(node, f"constant {node.value!r} is not a number")
        if isinstance(node, ast.Name):
            if node.id in self.locals:
                return self.locals[node.id]
            if node.id in self.spec.inputs:
                return self.spec.inputs[node.id]
            if node.id in ("True", "False"):
                return node.id
            raise self.fail(node, f"unknown name {node.id!r}")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner, name = node.value.id, node.attr
            if owner == "s":
                if name not in self.current:
                    raise self.fail(node, f"state has no variable {name!r}")
                return self.current[name]
            if owner == "c":
                if name in self.spec.arrays:
                    return self.spec.arrays[name]
                if name not in self.spec.constants:
                    raise self.fail(node, f"constants have no {name!r}")
                return self.literal(self.spec.constants[name])
            if owner == "self":
                value = getattr(self.model, name)
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise self.fail(node, f"self.{name} is not a number; put it in constants()")
                return self.literal(value)
        if isinstance(node, ast.BinOp):
            left, right = self.expr(node.left), self.expr(node.right)
            ops = {
                ast.Add: "+",
                ast.Sub: "-",
                ast.Mult: "*",
                ast.Div: "/",
                ast.Pow: "**",
                ast.BitAnd: "&",  # as torch: bitwise, so booleans need no branches
                ast.BitOr: "|",
            }
            if type(node.op) not in ops:
                raise self.fail(node, f"operator {type(node.op).__name__} is not supported")
            if isinstance(node.op, ast.Pow) and self.spec.target == "triton":
                raise self.fail(node, "operator Pow has no Triton translation; use exp()")
            return f"({left} {ops[type(node.op)]} {right})"
        if isinstance(node, ast.UnaryOp):
            operand = self.expr(node.operand)
            if isinstance(node.op, ast.USub):
                return f"(-{operand})"
            if isinstance(node.op, ast.Invert | ast.Not):
                return self.negation.format(operand)
            raise self.fail(node, f"operator {type(node.op).__name__} is not supported")
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                raise self.fail(node, "chained comparisons are not supported")
            ops = {
                ast.Gt: ">",
                ast.GtE: ">=",
                ast.Lt: "<",
                ast.LtE: "<=",
                ast.Eq: "==",
                ast.NotEq: "!=",
            }
            op = ops.get(type(node.ops[0]))
            if op is None:
                raise self.fail(node, "unsupported comparison")
            return f"({self.expr(node.left)} {op} {self.expr(node.comparators[0])})"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            args = [self.expr(a) for a in node.args]
            name = node.func.id
            if name in self.calls and len(args) == _ARITY[name]:
                return self.calls[name].format(*args)
            if name == "spike":
                raise self.fail(node, "spike() may only be assigned to s.z")
            raise self.fail(
                node, f"function {name!r} is not part of the model language {FUNCTIONS}"
            )
        raise self.fail(node, f"{type(node).__name__} is not supported in model code")

    def literal(self, value: Any) -> str:
        if isinstance(value, bool):
            return repr(value)
        if isinstance(value, int):
            return repr(value)
        value = float(value)
        if self.spec.target == "triton":  # untyped: Triton casts it to the other operand's dtype
            return f"({'-' if value < 0 else ''}1e999)" if math.isinf(value) else repr(value)
        if math.isinf(value):
            return f"np.{self.spec.float_type}({'-' if value < 0 else ''}np.inf)"
        return f"np.{self.spec.float_type}({value!r})"

    def constant_value(self, node: ast.expr) -> Any:
        """Evaluate a configuration test (``self.v_reset is None``) when code is generated."""
        env = {"self": self.model, "c": Constants(self.spec.constants), "math": math}
        try:
            return eval(compile(ast.Expression(node), self.where, "eval"), {}, env)  # noqa: S307
        except Exception as err:
            raise self.fail(
                node, f"an if must test the model's configuration only ({err})"
            ) from None

    # ---------------------------------------------------------------- statements
    def statements(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # docstring
            if isinstance(stmt, ast.If):
                self.statements(stmt.body if self.constant_value(stmt.test) else stmt.orelse)
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                self.assign(stmt.targets[0], stmt.value)
            elif isinstance(stmt, ast.Return) and stmt.value is not None:
                self.result = self.expr(stmt.value)
            elif isinstance(stmt, ast.Pass):
                continue
            else:
                raise self.fail(stmt, f"{type(stmt).__name__} is not supported in model code")

    def assign(self, target: ast.expr, value: ast.expr) -> None:
        is_spike = (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "spike"
        )
        if is_spike:
            if not (isinstance(target, ast.Attribute) and target.attr == "z"):
                raise self.fail(value, "spike() may only be assigned to s.z")
            if len(value.args) != 2:
                raise self.fail(value, "spike(distance, refractory) takes two arguments")
            dist, refr = f"{self.prefix}distance", f"{self.prefix}refractory"
            self.lines.append(f"{dist} = {self.expr(value.args[0])}")
            self.lines.append(f"{refr} = {self.expr(value.args[1])}")
            self.distance, self.refractory = dist, refr
            rhs = f"({dist} > 0) & {self.negation.format(refr)}"
        else:
            rhs = self.expr(value)
        if isinstance(target, ast.Name):
            name = f"{self.prefix}l_{target.id}"
            if target.id in self.locals:  # a new version keeps numba's types stable
                name = f"{name}_{len(self.lines)}"
            self.locals[target.id] = name
        elif (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == "s"
        ):
            if target.attr not in self.current:
                raise self.fail(target, f"state has no variable {target.attr!r}")
            self.versions[target.attr] += 1
            name = f"{self.prefix}{target.attr}_{self.versions[target.attr]}"
            self.current[target.attr] = name
        else:
            raise self.fail(target, "assign to s.<variable> or to a local name only")
        self.lines.append(f"{name} = {rhs}")


def translate(model: Any, method: str, spec: Scalar, prefix: str = "") -> Translation:
    """Scalar code of ``model.<method>`` (see the module docstring).

    Raises :class:`ModelCodeError` naming the model, method and line for code outside the
    model language. The update of a model with ``stages`` (:class:`Stage`) is the translations of
    its stages, in order, each starting from the names the stages before it left.
    """
    stages = getattr(model, "stages", None)
    if method == "update" and stages:
        return _translate_stages(stages, spec, prefix)
    fn = getattr(type(model), method)
    where = f"{type(model).__name__}.{method}"
    node = method_ast(fn)
    tr = _Translator(model, spec, prefix, where)
    tr.statements(node.body)
    assigned = {n: v for n, v in tr.current.items() if tr.versions[n] > 0}
    return Translation(tr.lines, assigned, tr.result, tr.distance, tr.refractory)


def _translate_stages(stages: tuple[Stage, ...], spec: Scalar, prefix: str) -> Translation:
    """The joined translation of a composite update (see :func:`translate`)."""
    initial = {name: spec.bound.get(name, f"{prefix}{name}_0") for name in spec.state}
    current = dict(initial)
    lines: list[str] = []
    distance = refractory = None
    for k, stage in enumerate(stages):
        sub = Scalar(
            state={name: name for name in stage.state},
            inputs={name: spec.inputs[name] for name in stage.inputs},
            constants=stage_constants(spec.constants, stage.key),
            arrays=spec.arrays if not stage.key else {},
            float_type=stage.float_type or spec.float_type,
            target=spec.target,
            bound={name: current[field] for name, field in stage.state.items()},
        )
        tr = translate(stage.definition, stage.method, sub, prefix=f"{prefix}{k}_")
        lines += tr.lines
        for name, value in tr.assigned.items():
            current[stage.state[name]] = value
        if tr.distance is not None:
            distance, refractory = tr.distance, tr.refractory
    assigned = {name: v for name, v in current.items() if v != initial[name]}
    return Translation(lines, assigned, None, distance, refractory)


# ---------------------------------------------------------------------- generated modules
def cache_root() -> Path:
    """Writable directory for generated code and numba's cache (created on first use).

    ``NEUROWIRE_CACHE_DIR`` if set, else ``~/.cache/neurowire`` (``XDG_CACHE_HOME``), else a
    directory in the system's temporary directory (a read-only install with no writable home).
    """
    env = os.environ.get("NEUROWIRE_CACHE_DIR")
    candidates = [Path(env)] if env else []
    xdg = os.environ.get("XDG_CACHE_HOME")
    home = os.path.expanduser("~")
    if xdg:
        candidates.append(Path(xdg) / "neurowire")
    if home and home != "~":
        candidates.append(Path(home) / ".cache" / "neurowire")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    candidates.append(Path(tempfile.gettempdir()) / f"neurowire-{uid}")
    for path in candidates:
        if _writable(path):
            return path
    raise OSError(f"no writable cache directory among {[str(p) for p in candidates]}")


def configure_numba_cache(package_dir: Path | None = None) -> str | None:
    """Give numba a writable cache directory when it would have none.

    numba caches next to a module's source (``__pycache__``) or under the user's home; on a
    read-only install with no writable home it has neither and every ``cache=True`` function
    fails with "no locator available". Then (and only then, with ``NUMBA_CACHE_DIR`` unset) this
    sets ``NUMBA_CACHE_DIR`` to ``<cache_root>/numba``. Returns the directory set, or None.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    package_dir = Path(__file__).parent if package_dir is None else package_dir
    if _writable(package_dir / "native" / "__pycache__"):
        return None
    home_cache = Path(os.path.expanduser("~")) / ".cache"
    if os.path.expanduser("~") != "~" and _writable(home_cache):
        return None
    target = str(cache_root() / "numba")
    os.environ["NUMBA_CACHE_DIR"] = target
    if "numba" in sys.modules:  # imported before neurowire: its config was read already
        sys.modules["numba"].config.CACHE_DIR = target
    return target


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def generated_module(source: str, kind: str) -> types.ModuleType:
    """Import ``source`` from ``<cache_root>/generated/<kind>_<hash>.py`` (written once).

    The file stays unchanged while its source does, so numba's ``cache=True`` works for the
    functions it defines; ``module.__file__`` is the place to read the generated code.
    """
    digest = hashlib.sha1(source.encode()).hexdigest()[:16]
    name = f"neurowire_generated_{kind}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    folder = cache_root() / "generated"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}_{digest}.py"
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
