"""Lazy public names for packages (PEP 562): import a submodule on first attribute access.

Example:
    >>> from edgeai._lazy import lazy_attributes
    >>> getattr_, dir_ = lazy_attributes("edgeai", {"TensorSpec": "edgeai.specs"}, ["TensorSpec"])
    >>> getattr_("TensorSpec").__name__
    'TensorSpec'
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    module_name: str, table: Mapping[str, str], exported: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``module_name``: ``table`` maps a public name to the module defining it."""
    exported = list(exported)

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            setattr(sys.modules[module_name], name, value)  # later lookups skip this function
            return value
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[module_name])) | set(exported))

    return __getattr__, __dir__
