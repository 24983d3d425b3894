"""Native op implementations: one op (or small family) per module.

See :mod:`edgeai.ops._base` for the contract and the registry. Op modules
register themselves when imported; :func:`load_all` imports every module
under ``edgeai/ops/``, and :func:`supported` lists exactly what the native
engine claims: each op with the schema versions some registered class covers.

:func:`load_for` imports only the modules that register a model's ops (what
the native backend calls before compiling): a full load writes which modules
registered which ops to an index file in the user's cache directory, keyed by
a hash of the op sources, and later processes read it (importing all ~40 op
modules costs 0.35 s where Python writes no ``.pyc`` files). Without a valid
index, for an op it does not list, or where one module re-registers another's
op version, :func:`load_for` is :func:`load_all`.

Example:
    >>> import edgeai.ops
    >>> ("", "Identity") in {(c.domain, c.op_type) for c in edgeai.ops.supported()}
    True
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pkgutil
import sys
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

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
        from edgeai.ops._base import _REGISTRY

        fresh = not _REGISTRY  # nothing registered yet: every registration is seen below
        order: list[str] = []
        index: dict[str, list[str]] = {}
        overridden = False
        # walk_packages imports each package after yielding it: the import here comes first, so the
        # registrations of a package (and of what it imports) are its own
        for info in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
            name = info.name
            if name.rsplit(".", 1)[-1].startswith("test"):
                continue
            before = {key: list(entries) for key, entries in _REGISTRY.items()}
            if not _import(name):
                continue
            order.append(name)
            for key, entries in _REGISTRY.items():
                old = before.get(key, [])
                if entries != old:
                    index.setdefault(f"{key[0]}|{key[1]}", []).append(name)
                    kept = {e[0]: e[2] for e in old}
                    overridden |= any(since in kept and kept[since] is not cls for since, _, cls in entries)
        _loaded = True
        _loaded_modules.update(order)
        if fresh and not overridden:
            _write_index({"order": order, "ops": index, "skipped": sorted(skipped)})


def load_for(ops: Iterable[tuple[str, str]]) -> None:
    """Import the op modules that register ``ops`` (``(domain, op_type)`` pairs), in
    :func:`load_all`'s order, from the index of an earlier full load (see the module docstring);
    :func:`load_all` when there is no valid index or it does not list one of ``ops``."""
    if _loaded:
        return
    index = _read_index()
    if index is None:
        load_all()
        return
    table: dict[str, list[str]] = index["ops"]
    wanted: set[str] = set()
    for domain, op_type in ops:
        names = table.get(f"{'' if domain in ('', 'ai.onnx') else domain}|{op_type}")
        if names is None:
            load_all()
            return
        wanted.update(names)
    with _lock:
        for name in index["order"]:
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
    return True


def _index_path() -> Path:
    """Where the op index lives: ``$EDGEAI_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgeai`` or ``~/.cache/edgeai``."""
    root = os.environ.get("EDGEAI_CACHE_DIR")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgeai")
    return Path(root) / "op-index.json"


def _fingerprint() -> str:
    """A hash of every op source file (path and bytes) and of the Python version."""
    digest = hashlib.sha256(sys.version.encode())
    base = Path(__path__[0])
    for path in sorted(base.rglob("*.py")):
        digest.update(str(path.relative_to(base)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _read_index() -> dict[str, Any] | None:
    try:
        data = json.loads(_index_path().read_text(encoding="utf-8"))
        if data.get("fingerprint") != _fingerprint() or data.get("format") != _INDEX_FORMAT:
            return None
        return dict(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_index(data: dict[str, Any]) -> None:
    """Write the index atomically (a temporary file, then a rename); a read-only cache is no error."""
    try:
        path = _index_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": _INDEX_FORMAT, "fingerprint": _fingerprint(), **data}
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as f:
            json.dump(payload, f)
        os.replace(f.name, path)
    except OSError:
        pass


_INDEX_FORMAT = 1


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
