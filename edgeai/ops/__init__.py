"""Native op implementations: one op (or small family) per module.

See :mod:`edgeai.ops._base` for the contract and the registry. Op modules
register themselves when imported; :func:`load_all` imports every module
under ``edgeai/ops/`` (the native backend calls it before compiling a model),
and :func:`supported` lists exactly what the native engine claims: each op
with the schema versions some registered class covers.

Example:
    >>> import edgeai.ops
    >>> ("", "Identity") in {(c.domain, c.op_type) for c in edgeai.ops.supported()}
    True
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from typing import NamedTuple

__all__ = ["ClaimedOp", "load_all", "supported"]

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
        for info in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
            leaf = info.name.rsplit(".", 1)[-1]
            if leaf.startswith("test"):
                continue
            try:
                importlib.import_module(info.name)
            except ModuleNotFoundError as exc:
                # An op module that needs an optional extra that is not installed: its ops
                # are simply not claimed. A missing edgeai module is a bug and is raised.
                if exc.name is None or exc.name.split(".")[0] == "edgeai":
                    raise
                skipped[info.name] = f"needs {exc.name!r}, which is not installed"
        _loaded = True


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
