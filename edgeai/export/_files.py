"""Atomic output: a file or folder appears whole at its path, or not at all."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_output"]


@contextmanager
def atomic_output(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place when the block succeeds.

    The temporary name keeps ``target``'s suffix, so format sniffing works on it
    during the block. A file is moved with one ``os.replace``. A folder (Core ML
    ``.mlpackage``) replaces an existing one by two renames, the old one
    removed only after the new one is in place. On an exception the temporary
    path is removed and ``target`` is left untouched.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_output(d / "m.bin") as tmp:
    ...     _ = tmp.write_bytes(b"ok")
    >>> (d / "m.bin").read_bytes()
    b'ok'
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = target.with_name(f".{target.stem}.{tag}.partial{target.suffix}")
    try:
        yield tmp
        if tmp.is_dir():
            old = target.with_name(f".{target.stem}.{tag}.old{target.suffix}")
            if target.exists():
                os.replace(target, old)
            os.replace(tmp, target)
            _remove(old)
        elif tmp.exists():
            if target.is_dir():
                _remove(target)
            os.replace(tmp, target)
        else:
            raise FileNotFoundError(f"the converter wrote nothing at {tmp}")
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
