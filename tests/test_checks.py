"""The constraint vocabulary and its one wording (aekit._checks), and the option table (aekit.presets.options)."""

import numpy as np
import pytest

from aekit._checks import BOOL, Instance, Interval, OneOf, Sizes, Text, check, validate
from aekit.presets.options import OPTIONS
from aekit.presets._registry import PRESETS


@pytest.mark.parametrize("accepted, value, words", [
    ([Interval(int, 1)], 0, "an integer >= 1"),
    ([Interval(int, 1)], 2.0, "an integer >= 1"),
    ([Interval(int, 1)], True, "an integer >= 1"),
    ([Interval(int, 0, 10)], 11, "an integer in [0, 10]"),
    ([Interval(int, 0, 2**63, "left")], -1, "an integer in [0, 2**63)"),
    ([Interval(float, 0)], float("nan"), "a finite number >= 0"),
    ([Interval(float, 0, None, "neither")], 0.0, "a finite number > 0"),
    ([Interval(float, 0, 1, "left")], 1.0, "in [0, 1)"),
    ([Interval(float, 0, 0.5, "right")], 0, "in (0, 0.5]"),
    ([OneOf("l1", "kl")], "l2", "'l1' or 'kl'"),
    ([BOOL], 1, "True or False"),
    ([OneOf(None), Interval(int, 1), OneOf("auto")], 0, "None, an integer >= 1 or 'auto'"),
    ([Sizes()], [3, 0], "a list of integers >= 1"),
    ([Instance(dict, "a dict")], [], "a dict"),
    ([Text()], 3, "a string"),
])
def test_one_wording_names_the_value_and_what_is_accepted(accepted, value, words):
    with pytest.raises(ValueError) as e:
        check(value, "x", *accepted)
    assert str(e.value) == f"x must be {words}, got {value!r}"


@pytest.mark.parametrize("accepted, value", [
    ([Interval(int, 1)], np.int64(3)), ([Interval(float, 0, 1)], np.float32(0.5)), ([Interval(float, 0)], 2),
    ([BOOL], np.bool_(True)), ([OneOf(None, -1)], -1), ([OneOf(None)], None), ([Sizes()], ()), ([Sizes()], (4, 2)),
])
def test_accepted_values_pass_through(accepted, value):
    assert check(value, "x", *accepted) is value


def test_validate_checks_each_declared_value_and_ignores_the_rest():
    validate({"a": 1, "other": object()}, {"a": [Interval(int, 1)], "b": [BOOL]})
    with pytest.raises(ValueError, match="b must be True or False, got 'yes'"):
        validate({"a": 1, "b": "yes"}, {"a": [Interval(int, 1)], "b": [BOOL]})


def test_every_preset_option_has_one_home_in_the_option_table():
    """Each option of aekit's presets is described (help) and constrained in aekit.presets.options, once."""
    for preset in PRESETS.values():
        if not preset.module.startswith("aekit."):
            continue
        for name, default in preset.options().items():
            assert name in OPTIONS, f"{preset.name}: option {name!r} has no entry in aekit.presets.options.OPTIONS"
            # the preset's own default is an accepted value
            check(default, f"{preset.name} default {name}", *OPTIONS[name].accepts)
