"""The model-language translator (:mod:`neurowire.codegen`): what it writes for a valid update,
and the error it raises, naming model, method and line, for each construct it cannot express.

Lines are counted from the ``def`` line of the method (line 1).
"""

from __future__ import annotations

import pytest

from neurowire import codegen
from neurowire.codegen import ModelCodeError, Scalar, exp, maximum, spike, translate, where

SPEC = Scalar(
    state={"v": "v[i]", "z": "z[i]"},
    inputs={"i_syn": "i_syn[i]"},
    constants={"alpha": 0.5, "v_th": 1.0},
)


def numba_code(model, spec=SPEC) -> list[str]:
    return translate(model, "update", spec).lines


class Valid:
    label = "valid"
    gain = 2

    def update(self, s, c, i_syn):
        """A docstring is skipped."""
        if self.gain == 2:
            drive = i_syn * self.gain
        else:
            drive = i_syn
        s.v = maximum(c.alpha * s.v + drive - c.v_th * s.z, -1.0)
        s.z = spike(s.v - c.v_th, ~(s.v < 5.0))
        return where(s.z, exp(s.v), 0.0)


def test_a_valid_update_becomes_versioned_scalar_statements():
    tr = translate(Valid(), "update", SPEC)
    assert tr.lines == [
        "l_drive = (i_syn[i] * 2)",
        "v_1 = max((((np.float64(0.5) * v_0) + l_drive) - (np.float64(1.0) * z_0)),"
        " (-np.float64(1.0)))",
        "distance = (v_1 - np.float64(1.0))",
        "refractory = (not (v_1 < np.float64(5.0)))",
        "z_1 = (distance > 0) & (not refractory)",
    ]
    assert tr.assigned == {"v": "v_1", "z": "z_1"}
    assert tr.result == "(math.exp(v_1) if z_1 else np.float64(0.0))"
    assert (tr.distance, tr.refractory) == ("distance", "refractory")


class Reassigned:
    def update(self, s, c, i_syn):
        x = i_syn
        x = x * 2.0
        s.v = x
        s.v = s.v + x


def test_a_name_assigned_twice_gets_a_new_version_each_time():
    tr = translate(Reassigned(), "update", SPEC)
    assert tr.lines == [  # numba keeps one type per name: each assignment a new name
        "l_x = i_syn[i]",
        "l_x_1 = (l_x * np.float64(2.0))",
        "v_1 = l_x_1",
        "v_2 = (v_1 + l_x_1)",
    ]
    assert tr.assigned == {"v": "v_2"}


class Counter:
    """A part of a composite: counts spikes in the composite's ``n_spikes``."""

    def update(self, s, c):
        s.total = where(s.spiked, s.total + c.step, s.total)


class WithCounter:
    """A composite update: ``Valid``'s, then ``Counter``'s on renamed state."""

    stages = (
        codegen.Stage(Valid(), "update", {"v": "v", "z": "z"}, ("i_syn",)),
        codegen.Stage(
            Counter(), "update", {"total": "n_spikes", "spiked": "z"}, (), "count", "float32"
        ),
    )


def test_a_composite_update_joins_its_stages_on_renamed_state_and_keyed_constants():
    spec = Scalar(
        state={"v": "v[i]", "n_spikes": "n[i]", "z": "z[i]"},
        inputs={"i_syn": "i_syn[i]"},
        constants={"alpha": 0.5, "v_th": 1.0, "count.step": 2.0},
    )
    tr = translate(WithCounter(), "update", spec, prefix="s_")
    assert tr.lines[-1] == (  # reads the spikes stage 0 left, writes its own version names
        "s_1_total_1 = ((s_n_spikes_0 + np.float32(2.0)) if s_0_z_1 else s_n_spikes_0)"
    )
    assert tr.assigned == {"v": "s_0_v_1", "z": "s_0_z_1", "n_spikes": "s_1_total_1"}
    assert (tr.distance, tr.refractory) == ("s_0_distance", "s_0_refractory")
    assert codegen.stage_constants(spec.constants, "count") == {"step": 2.0}
    assert codegen.stage_constants(spec.constants, "") == {"alpha": 0.5, "v_th": 1.0}


class UnknownName:
    def update(self, s, c, i_syn):
        s.v = s.v + rand  # noqa: F821


class ReadsMissingState:
    def update(self, s, c, i_syn):
        s.v = s.a


class WritesMissingState:
    def update(self, s, c, i_syn):
        x = s.v
        s.w = x


class MissingConstant:
    def update(self, s, c, i_syn):
        s.v = c.beta * s.v


class TextAttribute:
    label = "tagged"

    def update(self, s, c, i_syn):
        s.v = self.label


class TextConstant:
    def update(self, s, c, i_syn):
        s.v = "fast"


class Modulo:
    def update(self, s, c, i_syn):
        s.v = s.v % 2.0


class UnaryPlus:
    def update(self, s, c, i_syn):
        s.v = +s.v


class Chained:
    def update(self, s, c, i_syn):
        s.z = where(0.0 < s.v < 1.0, 1.0, 0.0)


class Membership:
    def update(self, s, c, i_syn):
        s.z = where(s.v in (1.0,), 1.0, 0.0)


class SpikeInExpression:
    def update(self, s, c, i_syn):
        s.v = s.v + spike(s.v, False)


class SpikeToLocal:
    def update(self, s, c, i_syn):
        fired = spike(s.v, False)
        s.z = fired


class SpikeOneArgument:
    def update(self, s, c, i_syn):
        s.z = spike(s.v - c.v_th)


class ForeignFunction:
    def update(self, s, c, i_syn):
        s.v = sin(s.v)  # noqa: F821


class WrongArity:
    def update(self, s, c, i_syn):
        s.v = maximum(s.v)


class Subscript:
    def update(self, s, c, i_syn):
        s.v = s.v[0]


class StateTest:
    def update(self, s, c, i_syn):
        if s.v > 0:
            s.v = 0.0


class AugmentedAssign:
    def update(self, s, c, i_syn):
        s.v += i_syn


class Loop:
    def update(self, s, c, i_syn):
        for _ in range(2):
            s.v = s.v * c.alpha


class AssignsConstant:
    def update(self, s, c, i_syn):
        c.alpha = 0.0


class TupleAssign:
    def update(self, s, c, i_syn):
        s.v, s.z = 0.0, 0.0


class Lambda:
    update = lambda self, s, c, i_syn: None  # noqa: E731


class Generated:
    pass


exec("def update(self, s, c, i_syn):\n    s.v = 0.0\n", globals(), ns := {})  # no source file
Generated.update = ns["update"]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (UnknownName, r"UnknownName\.update, line 2: unknown name 'rand'"),
        (ReadsMissingState, r"ReadsMissingState\.update, line 2: state has no variable 'a'"),
        (WritesMissingState, r"WritesMissingState\.update, line 3: state has no variable 'w'"),
        (MissingConstant, r"MissingConstant\.update, line 2: constants have no 'beta'"),
        (TextAttribute, r"line 2: self\.label is not a number; put it in constants\(\)"),
        (TextConstant, r"TextConstant\.update, line 2: constant 'fast' is not a number"),
        (Modulo, r"Modulo\.update, line 2: operator Mod is not supported"),
        (UnaryPlus, r"UnaryPlus\.update, line 2: operator UAdd is not supported"),
        (Chained, r"Chained\.update, line 2: chained comparisons are not supported"),
        (Membership, r"Membership\.update, line 2: unsupported comparison"),
        (SpikeInExpression, r"line 2: spike\(\) may only be assigned to s\.z"),
        (SpikeToLocal, r"SpikeToLocal\.update, line 2: spike\(\) may only be assigned to s\.z"),
        (SpikeOneArgument, r"line 2: spike\(distance, refractory\) takes two arguments"),
        (ForeignFunction, r"line 2: function 'sin' is not part of the model language"),
        (WrongArity, r"line 2: function 'maximum' is not part of the model language"),
        (Subscript, r"Subscript\.update, line 2: Subscript is not supported in model code"),
        (StateTest, r"StateTest\.update, line 2: an if must test the model's configuration"),
        (AugmentedAssign, r"line 2: AugAssign is not supported in model code"),
        (Loop, r"Loop\.update, line 2: For is not supported in model code"),
        (AssignsConstant, r"line 2: assign to s\.<variable> or to a local name only"),
        (TupleAssign, r"TupleAssign\.update, line 2: Tuple is not supported in model code"),
        (Lambda, r"Lambda\.<lambda> is not a plain function definition"),
        (Generated, r"cannot read the source of update"),
    ],
)
def test_code_outside_the_model_language_is_refused_naming_model_and_line(model, message):
    with pytest.raises(ModelCodeError, match=message):
        translate(model(), "update", SPEC)


def test_model_code_error_is_a_type_error():
    assert issubclass(ModelCodeError, TypeError)


class Power:
    def update(self, s, c, i_syn):
        s.v = s.v**2


def test_power_translates_for_numba_but_is_refused_for_triton():
    assert numba_code(Power()) == ["v_1 = (v_0 ** 2)"]
    triton = Scalar(SPEC.state, SPEC.inputs, SPEC.constants, target="triton")
    with pytest.raises(ModelCodeError, match=r"line 2: operator Pow has no Triton translation"):
        translate(Power(), "update", triton)


def test_an_unknown_target_is_refused_listing_the_targets():
    spec = Scalar(SPEC.state, SPEC.inputs, SPEC.constants, target="cuda")
    with pytest.raises(
        ValueError, match=r"target must be one of \('numba', 'triton'\), got 'cuda'"
    ):
        translate(Valid(), "update", spec)


def test_no_writable_cache_directory_is_an_error_listing_the_candidates(monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROWIRE_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setattr(codegen, "_writable", lambda path: False)
    with pytest.raises(OSError, match=r"no writable cache directory among \[.*mine"):
        codegen.cache_root()
