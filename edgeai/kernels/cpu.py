"""Which INT8 kernel path this CPU can run, chosen at run time.

Four paths, fastest first:

* ``"amx"``: Intel AMX ``tdpbusd`` on 16 x 64-byte tiles (Sapphire Rapids and
  later), for GEMM row blocks of 32; remainders and convolutions run on the
  VNNI microkernel (AMX implies AVX-512 VNNI). Needs the Linux permission
  ``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``, requested once.
* ``"vnni"``: AVX-512 VNNI ``vpdpbusd`` (u8 x s8, four products summed into
  int32, no intermediate saturation: exact for every 8-bit weight).
* ``"avx2"``: AVX2. ``vpmaddubsw`` + ``vpmaddwd`` when the weights fit in 7 bits
  (then the int16 pair sums cannot saturate), otherwise an exact int16 path
  (``vpmaddwd`` on zero-/sign-extended operands).
* ``"portable"``: pure numba loops, for any CPU numba supports (Arm included).

Features come from LLVM's view of the host (the same view numba compiles
for), so a path is only chosen when the code generator can emit it.

Example:
    >>> from edgeai.kernels.cpu import cpu_features, kernel_path
    >>> isinstance(cpu_features()["avx2"], bool)
    True
    >>> kernel_path() in ("amx", "vnni", "avx2", "portable")
    True
"""

from __future__ import annotations

import functools
import os

from edgeai.errors import KernelError

__all__ = ["PATHS", "available_paths", "cpu_features", "kernel_path", "set_kernel_path"]

PATHS = ("amx", "vnni", "avx2", "portable")

_forced: str | None = None


class KernelPathError(KernelError):
    """A kernel path was requested that is unknown or that this CPU cannot run."""


@functools.cache
def cpu_features() -> dict[str, bool]:
    """The host CPU's SIMD features that matter to the INT8 kernels.

    Example:
        >>> sorted(cpu_features())
        ['amx_int8', 'avx2', 'avx512bw', 'avx512f', 'avx512vl', 'avx512vnni', 'avxvnni', 'neon']
    """
    from llvmlite import binding as llvm

    flags = {}
    try:
        text = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # some hosts (old Arm kernels) do not report features
        text = ""
    for item in text.split(","):
        if item:
            flags[item[1:]] = item[0] == "+"
    triple = llvm.get_process_triple()
    return {
        "avx2": flags.get("avx2", False),
        "avx512f": flags.get("avx512f", False),
        "avx512bw": flags.get("avx512bw", False),
        "avx512vl": flags.get("avx512vl", False),
        "avx512vnni": flags.get("avx512vnni", False),
        "avxvnni": flags.get("avxvnni", False),
        "amx_int8": flags.get("amx-int8", False) and flags.get("amx-tile", False),
        "neon": triple.startswith(("aarch64", "arm64")) or flags.get("neon", False),
    }


@functools.cache
def _amx_permitted() -> bool:
    """Ask Linux for the AMX tile-data state (once per process); False where it is refused."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # syscall(SYS_arch_prctl=158, ARCH_REQ_XCOMP_PERM=0x1023, XFEATURE_XTILEDATA=18)
        return int(libc.syscall(158, 0x1023, 18)) == 0
    except (OSError, AttributeError):
        return False


def available_paths() -> list[str]:
    """The kernel paths this CPU can run, fastest first.

    Example:
        >>> "portable" in available_paths()
        True
    """
    f = cpu_features()
    paths = []
    vnni = f["avx512vnni"] and f["avx512bw"] and f["avx512f"]
    if vnni and f["amx_int8"] and _amx_permitted():
        paths.append("amx")
    if vnni:
        paths.append("vnni")
    if f["avx2"]:
        paths.append("avx2")
    paths.append("portable")
    return paths


def set_kernel_path(path: str | None) -> None:
    """Force a kernel path (``"amx"``, ``"vnni"``, ``"avx2"``, ``"portable"``), or ``None`` for automatic.

    Applies to kernels prepared after the call (weights are packed per path).
    The environment variable ``EDGEAI_KERNEL_PATH`` does the same for a whole process.

    Example:
        >>> set_kernel_path("portable"); kernel_path()
        'portable'
        >>> set_kernel_path(None)
    """
    global _forced
    if path is not None:
        _check(path)
    _forced = path


def _check(path: str) -> str:
    if path not in PATHS:
        raise KernelPathError(f"unknown kernel path {path!r}: use one of {', '.join(PATHS)} or None")
    if path not in available_paths():
        raise KernelPathError(
            f"kernel path {path!r} needs CPU features this machine lacks; "
            f"available here: {', '.join(available_paths())}"
        )
    return path


def kernel_path() -> str:
    """The path kernels prepared now will use: the forced one, else the fastest available."""
    if _forced is not None:
        return _forced
    env = os.environ.get("EDGEAI_KERNEL_PATH")
    if env:
        return _check(env)
    return available_paths()[0]
