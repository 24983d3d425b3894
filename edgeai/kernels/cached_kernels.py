"""Loading edgeai's own numba kernels from numba's on-disk cache without numba's full target set-up.

numba's ``Cache.load_overload`` begins with ``target_context.refresh()``. The first refresh in a
process imports and installs every typing and lowering registry numba has (``numba.np.arraymath``,
which imports ``scipy.linalg`` where scipy is installed, ``numba.np.random``, ``numba.typed``,
cffi support, numba's extension entry points, ...): 0.3-0.45 s here, the largest part of a first
inference with a warm cache. A cached kernel needs none of it: its object code is already compiled
and linked. What loading it does need is numba's runtime (NRT: its symbols and atomic helpers),
which that first refresh would also have initialised; :func:`install` makes the loads of functions
defined in edgeai's own modules initialise the NRT and skip the rest.

Nothing else changes: functions of other modules load with the full refresh as before, and any
compilation (a cache miss included) refreshes the context itself, so numba's registries are complete
before anything is typed or lowered. A user's ``@njit`` code calling ``np.dot`` works as ever.
:func:`install` leaves numba as it is (and returns False) where its cache class does not have the
layout this relies on (``Cache.load_overload`` calling ``refresh()``, then ``_load_overload``, as
numba 0.68 does).

Example:
    >>> from edgeai.kernels.cached_kernels import install, installed
    >>> install() == installed()
    True
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["install", "installed", "is_edgeai_function"]

_lock = threading.Lock()
_installed = False


_LIGHT_MODULES = ("edgeai.kernels.", "edgeai.ops.quantized.", "edgeai.ops._mean_kernels", "_edgeai_program_")
"""Modules whose cached functions load without the refresh: the INT8 kernels, the quantized ops' loops,
the mean loops and the programs :mod:`edgeai.graph.program` generates, all plain ``@njit`` functions.
Not every edgeai module: a cached ``@vectorize`` (``edgeai.ops.elementwise``) builds its ufunc wrapper
with the target context right after the load, and that needs the context's full registries."""


def is_edgeai_function(py_func: Any) -> bool:
    """Whether ``py_func`` is one of the edgeai functions :func:`install` serves (see
    :data:`_LIGHT_MODULES`)."""
    module = getattr(py_func, "__module__", None) or ""
    return module.startswith(_LIGHT_MODULES)


def installed() -> bool:
    """Whether :func:`install` has taken effect in this process."""
    return _installed


def install() -> bool:
    """Make cache loads of edgeai's numba functions skip numba's full target refresh (once per process).

    Imports numba. Returns whether the light loading is in place.
    """
    global _installed
    if _installed:
        return True
    with _lock:
        if _installed:
            return True
        try:
            from numba.core import caching
            from numba.core.cpu import CPUContext
            from numba.core.runtime import rtsys
        except ImportError:
            return False
        cache_cls = caching.Cache
        full_load = cache_cls.__dict__.get("load_overload")
        needed = ("_load_overload", "_guard_against_spurious_io_errors")
        if full_load is None or not all(hasattr(cache_cls, a) for a in needed) or not hasattr(rtsys, "initialize"):
            return False

        def load_overload(self: Any, sig: Any, target_context: Any) -> Any:
            if type(target_context) is CPUContext and is_edgeai_function(getattr(self, "_py_func", None)):
                rtsys.initialize(target_context)  # what the refresh would have done that the code needs
                with self._guard_against_spurious_io_errors():
                    return self._load_overload(sig, target_context)
                return None  # the guard swallowed an I/O error: a miss, as in numba's own method
            return full_load(self, sig, target_context)

        load_overload.__doc__ = full_load.__doc__
        load_overload.__wrapped__ = full_load  # type: ignore[attr-defined]
        cache_cls.load_overload = load_overload
        _installed = True
        return True
