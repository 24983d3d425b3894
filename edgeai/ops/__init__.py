"""Native op implementations: one op (or small family) per module.

See :mod:`edgeai.ops._base` for the contract and the registry. Op modules
register themselves when imported; :func:`load_all` imports every module
under ``edgeai/ops/``, and :func:`supported` lists exactly what the native
engine claims: each op with the schema versions some registered class covers.

:func:`load_for` imports only the modules that register a model's ops (what
the native backend calls before compiling), from the committed index
``edgeai/ops/_op_index.py`` of which module registers which op (importing all
~40 op modules costs 0.35 s where Python writes no ``.pyc`` files).
``scripts/gen_op_index.py`` regenerates the index from a full load in a fresh
process, and a test fails when it is stale. For an op the index does not list,
:func:`load_for` is :func:`load_all`, so a stale index costs time, never a
missing op.

Example:
    >>> import edgeai.ops
    >>> ("", "Identity") in {(c.domain, c.op_type) for c in edgeai.ops.supported()}
    True
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import NamedTuple

__all__ = ["ClaimedOp", "load_all", "load_for", "supported"]

_loaded = False
_lock = threading.Lock()
skipped: dict[str, str] = {}
"""Op modules not loaded because an optional dependency is missing: module -> reason."""


class ClaimedOp(NamedTuple):
    """One op the native engine runs: its domain, type and the schema versions covered."""

    domain: str
    op_type: str
    versions: tuple[int, ...]


def load_all() -> None:
    """Import every op module under ``edgeai/ops/`` (subpackages included), once."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        for name in _op_modules():
            if _import(name):
                _loaded_modules.add(name)
        _loaded = True


def _op_modules() -> Iterator[str]:
    """The op modules' names in :func:`load_all`'s order (test modules left out). Lazy:
    ``walk_packages`` imports a package after yielding it, so a caller importing each name as it
    comes imports every package first itself."""
    for info in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        if not info.name.rsplit(".", 1)[-1].startswith("test"):
            yield info.name


def load_for(ops: Iterable[tuple[str, str]]) -> None:
    """Import the op modules that register ``ops`` (``(domain, op_type)`` pairs), in
    :func:`load_all`'s order, from the committed op index (see the module docstring);
    :func:`load_all` when the index does not list one of ``ops``.

    Example:
        >>> import edgeai.ops
        >>> edgeai.ops.load_for([("", "Relu"), ("com.microsoft", "QLinearConv")])
        >>> from edgeai.ops._base import lookup
        >>> lookup("Relu", "", 14) is not None
        True
    """
    if _loaded:
        return
    from edgeai.ops._base import _norm_domain
    from edgeai.ops._op_index import OPS, ORDER

    wanted: set[str] = set()
    for domain, op_type in ops:
        names = OPS.get(f"{_norm_domain(domain)}|{op_type}")
        if names is None:
            load_all()
            return
        wanted.update(names)
    with _lock:
        for name in ORDER:
            if name in wanted and name not in _loaded_modules and _import(name):
                _loaded_modules.add(name)


_loaded_modules: set[str] = set()


def _import(name: str) -> bool:
    """Import one op module; False when it needs an optional extra that is not installed."""
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # An op module that needs an optional extra that is not installed: its ops
        # are simply not claimed. A missing edgeai module is a bug and is raised.
        if exc.name is None or exc.name.split(".")[0] == "edgeai":
            raise
        skipped[name] = f"needs {exc.name!r}, which is not installed"
        return False
    if "numba" in sys.modules:  # the op modules' kernels then load from numba's cache without its full set-up
        from edgeai.kernels.cached_kernels import install

        install()
    return True


def supported() -> list[ClaimedOp]:
    """Every op the native engine claims, sorted by domain and op type.

    ``versions`` are the ``onnx.defs`` schema versions covered (for ops in
    custom domains, the registered opsets, each meaning "from here on").
    """
    from edgeai.ops._base import claimed_versions, registered

    load_all()
    claimed = []
    for domain, op_type in registered():
        versions = claimed_versions(op_type, domain)
        if versions:
            claimed.append(ClaimedOp(domain, op_type, versions))
    return claimed
