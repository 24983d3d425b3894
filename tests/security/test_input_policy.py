"""InputPolicy: every rule, through Session(validation=...), against numpy's own verdict."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import edgeai
from edgeai.errors import InputValidationError
from edgeai.security import InputPolicy, InputRule

MODEL = edgeai.demo.model_path()


@pytest.fixture(scope="module")
def session() -> edgeai.Session:
    policy = InputPolicy({"image": InputRule(dtypes=["float32"], shape=[None, 1, 8, 8], min_value=0.0, max_value=1.0)})
    return edgeai.Session(MODEL, validation=policy)


def test_valid_input_runs_unchanged(session: edgeai.Session) -> None:
    images, _ = edgeai.demo.samples()
    plain = edgeai.Session(MODEL).run({"image": images})["probabilities"]
    np.testing.assert_array_equal(session.run({"image": images})["probabilities"], plain)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (np.full((1, 1, 8, 8), 1.5, np.float32), "max_value"),
        (np.full((1, 1, 8, 8), -0.1, np.float32), "min_value"),
        (np.where(np.eye(8, dtype=bool), np.nan, 0.5).astype(np.float32).reshape(1, 1, 8, 8), "allow_nan"),
        (np.where(np.eye(8, dtype=bool), np.inf, 0.5).astype(np.float32).reshape(1, 1, 8, 8), "allow_inf"),
    ],
)
def test_violations_name_input_and_rule(session: edgeai.Session, value: np.ndarray, rule: str) -> None:
    with pytest.raises(InputValidationError, match=rf"input 'image' violates rule '{rule}'"):
        session.run({"image": value})


def test_nan_position_is_reported() -> None:
    x = np.zeros((2, 3), np.float32)
    x[1, 2] = np.nan
    with pytest.raises(InputValidationError, match=r"1 NaN value\(s\), the first at index \(1, 2\)"):
        InputPolicy({"x": InputRule()}).check({"x": x})
    InputPolicy({"x": InputRule(allow_nan=True)}).check({"x": x})


def test_dtype_shape_and_size_rules() -> None:
    policy = InputPolicy({"x": InputRule(dtypes=["uint8", "int8"], shape=[None, 3], max_elements=30)})
    policy.check({"x": np.zeros((4, 3), np.uint8)})
    with pytest.raises(InputValidationError, match=r"'dtypes'.*float32"):
        policy.check({"x": np.zeros((4, 3), np.float32)})
    with pytest.raises(InputValidationError, match=r"'shape': got \[4, 2\], allowed \[\*, 3\]"):
        policy.check({"x": np.zeros((4, 2), np.uint8)})
    with pytest.raises(InputValidationError, match="'max_elements'"):
        policy.check({"x": np.zeros((11, 3), np.uint8)})


def test_policy_for_unknown_input_is_caught_on_first_run() -> None:
    sess = edgeai.Session(MODEL, validation=InputPolicy({"img": InputRule(max_value=1.0)}))
    with pytest.raises(InputValidationError, match=r"rules for \['img'\]"):
        sess.run({"image": np.zeros((1, 1, 8, 8), np.float32)})


def test_default_rule_applies_to_unlisted_inputs() -> None:
    policy = InputPolicy(default={"max_value": 10})
    with pytest.raises(InputValidationError, match="input 'anything'"):
        policy.check({"anything": np.array([11.0])})


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
    )
)
def test_verdict_matches_numpy(x: np.ndarray) -> None:
    rule = InputRule(min_value=-100.0, max_value=100.0)
    finite = x[np.isfinite(x)]
    should_fail = bool(
        np.isnan(x).any() or np.isinf(x).any() or (finite.size and (finite.min() < -100 or finite.max() > 100))
    )
    if should_fail:
        with pytest.raises(InputValidationError):
            rule.check("x", x)
    else:
        rule.check("x", x)
