"""Input validation policy: what each model input may hold, checked before every run.

Example:
    >>> import numpy as np
    >>> from edgeai.security import InputPolicy, InputRule
    >>> policy = InputPolicy({"image": InputRule(dtypes=["float32"], min_value=0.0, max_value=1.0)})
    >>> policy.check({"image": np.full((1, 3), 0.5, np.float32)})
    >>> try:
    ...     policy.check({"image": np.full((1, 3), 2.0, np.float32)})
    ... except Exception as e:
    ...     print(type(e).__name__)
    InputValidationError
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgeai.errors import InputValidationError

__all__ = ["InputPolicy", "InputRule"]


class InputRule(BaseModel):
    """The rules for one input. Fields left ``None`` are not checked.

    ``shape`` lists one entry per axis: a size, or ``None`` for any size.
    NaN and infinity are rejected unless allowed explicitly.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    dtypes: list[str] | None = Field(default=None, description="allowed numpy dtype names")
    shape: list[int | None] | None = None
    max_elements: int | None = Field(default=None, ge=0, description="upper bound on the element count")
    min_value: float | None = None
    max_value: float | None = None
    allow_nan: bool = False
    allow_inf: bool = False

    @field_validator("dtypes")
    @classmethod
    def _known_dtypes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return [np.dtype(v).name for v in value]

    def check(self, name: str, value: Any) -> None:
        """Raise :class:`~edgeai.errors.InputValidationError` naming ``name`` and the rule broken."""
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
        if self.dtypes is not None and arr.dtype.name not in self.dtypes:
            raise InputValidationError(
                f"input {name!r} violates rule 'dtypes': dtype {arr.dtype} is not one of {self.dtypes}"
            )
        if self.shape is not None:
            ok = arr.ndim == len(self.shape) and all(
                want is None or want == got for want, got in zip(self.shape, arr.shape)
            )
            if not ok:
                want = "[" + ", ".join("*" if d is None else str(d) for d in self.shape) + "]"
                raise InputValidationError(
                    f"input {name!r} violates rule 'shape': got {list(arr.shape)}, allowed {want}"
                )
        if self.max_elements is not None and arr.size > self.max_elements:
            raise InputValidationError(
                f"input {name!r} violates rule 'max_elements': {arr.size} elements > {self.max_elements}"
            )
        if arr.size == 0 or arr.dtype.kind not in "biufc":
            return
        if arr.dtype.kind in "fc":
            if not self.allow_nan:
                _reject(name, "allow_nan", np.isnan(arr), "NaN")
            if not self.allow_inf:
                _reject(name, "allow_inf", np.isinf(arr), "infinite")
        if self.min_value is not None or self.max_value is not None:
            data = arr.real if arr.dtype.kind == "c" else arr
            lo = float(np.nanmin(data)) if data.dtype.kind == "f" else float(data.min())
            hi = float(np.nanmax(data)) if data.dtype.kind == "f" else float(data.max())
            if self.min_value is not None and lo < self.min_value:
                raise InputValidationError(
                    f"input {name!r} violates rule 'min_value': minimum {lo:g} < allowed {self.min_value:g}"
                )
            if self.max_value is not None and hi > self.max_value:
                raise InputValidationError(
                    f"input {name!r} violates rule 'max_value': maximum {hi:g} > allowed {self.max_value:g}"
                )


def _reject(name: str, rule: str, mask: np.ndarray, what: str) -> None:
    if mask.any():
        first = tuple(int(i) for i in np.argwhere(mask)[0])
        raise InputValidationError(
            f"input {name!r} violates rule {rule!r}: {int(mask.sum())} {what} value(s), the first at "
            f"index {first}; clean the input or allow them in the policy"
        )


class InputPolicy:
    """Per-input rules, checked by ``Session(..., validation=policy)`` before each run.

    Args:
        rules: input name to :class:`InputRule` (or a dict of its fields).
        default: a rule for inputs without their own (``None``: not checked).
    """

    def __init__(self, rules: Mapping[str, InputRule | Mapping[str, Any]] | None = None, default: Any = None) -> None:
        self.rules: dict[str, InputRule] = {
            name: r if isinstance(r, InputRule) else InputRule(**r) for name, r in (rules or {}).items()
        }
        self.default: InputRule | None = (
            default if default is None or isinstance(default, InputRule) else InputRule(**default)
        )

    def check(self, feeds: Mapping[str, Any], specs: Sequence[Any] | None = None) -> None:
        """Check every feed; ``specs`` (the model's input specs) catch rules for unknown inputs."""
        if specs is not None:
            names = {s.name for s in specs}
            unknown = sorted(set(self.rules) - names)
            if unknown:
                raise InputValidationError(
                    f"the validation policy has rules for {unknown}, which are not inputs of the model "
                    f"(inputs: {sorted(names)}); fix the policy's input names"
                )
        for name, value in feeds.items():
            rule = self.rules.get(name, self.default)
            if rule is not None:
                rule.check(name, value)

    def __repr__(self) -> str:
        return f"InputPolicy(rules={sorted(self.rules)}, default={self.default is not None})"
