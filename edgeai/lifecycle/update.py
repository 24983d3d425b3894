"""Over-the-air updates: resumable, size-limited download; verify; install; smoke test; activate.

Example:
    >>> import tempfile, edgeai, numpy as np
    >>> from edgeai.lifecycle import ModelStore, UpdateClient, write_bundle
    >>> from edgeai.security import generate_signing_key
    >>> sk = generate_signing_key()
    >>> folder = tempfile.mkdtemp()
    >>> path = write_bundle(f"{folder}/digits-1.0.0.eai", edgeai.demo.model_path(), name="digits",
    ...                     version="1.0.0", signing_key=sk,
    ...                     sample_inputs={"image": edgeai.demo.samples()[0][:2]})
    >>> client = UpdateClient(ModelStore(f"{folder}/store", trusted_keys=[sk.public_key()]))
    >>> client.update(path).status
    'activated'
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from edgeai.errors import DownloadError, EdgeAIError, ModelNotFoundError, SizeLimitError
from edgeai.lifecycle.bundle import read_bundle
from edgeai.lifecycle.store import ModelStore
from edgeai.security.trust import DEFAULT_MAX_BUNDLE_BYTES

__all__ = ["DownloadError", "UpdateClient", "UpdateResult", "download"]

_CHUNK = 1 << 16


def download(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
    retries: int = 5,
    timeout: float = 30.0,
    backoff: float = 0.2,
) -> Path:
    """Fetch ``source`` (http(s) URL, ``file://`` URL or local path) to ``dest``.

    An interrupted HTTP transfer resumes where it stopped (``Range`` request),
    also across processes: the partial file ``dest + ".part"`` is kept. More
    than ``max_bytes`` (announced or received) raises
    :class:`~edgeai.errors.SizeLimitError` and discards the partial file.
    """
    dest = Path(dest)
    text = os.fspath(source)
    if text.startswith(("http://", "https://")):
        return _download_http(text, dest, max_bytes, retries, timeout, backoff)
    path = Path(text[7:] if text.startswith("file://") else text).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"update source {text!r} does not exist")
    if path.stat().st_size > max_bytes:
        raise SizeLimitError(f"{text} is {path.stat().st_size:,} bytes, over the limit of {max_bytes:,}")
    part = dest.with_name(dest.name + ".part")
    with path.open("rb") as src, part.open("wb") as out:
        _copy_limited(src, out, 0, max_bytes, text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(part, dest)
    return dest


def _copy_limited(src: Any, out: Any, have: int, max_bytes: int, what: str) -> int:
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            return have
        have += len(chunk)
        if have > max_bytes:
            raise SizeLimitError(f"{what} sent more than the limit of {max_bytes:,} bytes; download stopped")
        out.write(chunk)


def _download_http(url: str, dest: Path, max_bytes: int, retries: int, timeout: float, backoff: float) -> Path:
    part = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                total = _expected_total(resp, have, url)
                if resp.status == 200 and have:
                    have = 0  # the server ignored the Range header: start over
                if total is not None and total > max_bytes:
                    raise SizeLimitError(
                        f"{url} is {total:,} bytes, over the limit of {max_bytes:,}; not downloading it"
                    )
                with part.open("r+b" if have else "wb") as out:
                    out.seek(have)
                    out.truncate()
                    have = _copy_limited(resp, out, have, max_bytes, url)
                    out.flush()
                    os.fsync(out.fileno())
                if total is not None and have < total:
                    raise http.client.IncompleteRead(b"", total - have)
            os.replace(part, dest)
            return dest
        except SizeLimitError:
            part.unlink(missing_ok=True)
            raise
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # our partial file is unusable: start over
                part.unlink(missing_ok=True)
            elif exc.code < 500:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            last = exc
        except (TimeoutError, http.client.HTTPException, urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(backoff * (2**attempt))
    raise DownloadError(f"{url}: download failed after {retries + 1} attempts: {last}") from last


def _expected_total(resp: Any, have: int, url: str) -> int | None:
    if resp.status == 206:
        rng = resp.headers.get("Content-Range", "")
        start = rng.split(" ")[-1].split("-")[0] if rng else ""
        if not start.isdigit() or int(start) != have:
            raise DownloadError(f"{url}: the server resumed at {rng!r}, not at byte {have}")
        size = rng.rsplit("/", 1)[-1]
        return int(size) if size.isdigit() else None
    length = resp.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


class UpdateResult(BaseModel):
    """What an update did."""

    status: Literal["activated", "current", "rejected"]
    version: str
    previous: str | None
    reason: str = ""


class UpdateClient:
    """Fetch, verify, install, smoke-test and activate bundles in a :class:`ModelStore`.

    Args:
        store: the device's store (its trusted keys, name and target apply).
        key: decryption key for encrypted bundles (needed for the smoke test).
        max_bytes: download size limit.
        require_smoke_test: refuse bundles that carry no sample input.
        retries, timeout: download behaviour.
    """

    def __init__(
        self,
        store: ModelStore,
        *,
        key: bytes | str | None = None,
        max_bytes: int | None = None,
        require_smoke_test: bool = True,
        retries: int = 5,
        timeout: float = 30.0,
    ) -> None:
        self.store = store
        self.key = key
        self.max_bytes = max_bytes or store.max_size
        self.require_smoke_test = require_smoke_test
        self.retries = retries
        self.timeout = timeout
        self.downloads = store.root / "downloads"
        self.downloads.mkdir(exist_ok=True)

    def update(self, source: str | os.PathLike[str]) -> UpdateResult:
        """Bring the store to the bundle at ``source``; activate it only if its smoke test passes.

        Security failures (signature, tampering, rollback, expiry, mix-and-match,
        size) raise; a failing smoke test returns ``status="rejected"`` and keeps
        the active version.
        """
        name = hashlib.sha256(os.fspath(source).encode()).hexdigest()[:16] + ".eai"
        path = download(
            source,
            self.downloads / name,
            max_bytes=self.max_bytes,
            retries=self.retries,
            timeout=self.timeout,
        )
        previous = self.store.active
        try:
            installed = self.store.install(path)
        finally:
            path.unlink(missing_ok=True)
        if installed.version == previous:
            return UpdateResult(status="current", version=installed.version, previous=previous)
        problem = self._smoke_test(installed.version)
        if problem:
            with contextlib.suppress(EdgeAIError):
                self.store.uninstall(installed.version)
            return UpdateResult(status="rejected", version=installed.version, previous=previous, reason=problem)
        self.store.activate(installed.version)
        return UpdateResult(status="activated", version=installed.version, previous=previous)

    def _smoke_test(self, version: str) -> str:
        """An empty string when ``version`` loads and reproduces its expected output; else why not."""
        import edgeai

        file = self.store.root / self.store.state.installed[version].file
        try:
            bundle = read_bundle(file, trusted_keys=self.store.policy(), key=self.key)
            smoke = bundle.smoke_data()
            if smoke is None:
                return "the bundle carries no smoke test (sample input)" if self.require_smoke_test else ""
            inputs, expected = smoke
            tol = bundle.metadata.smoke
            with edgeai.Session(bundle.source()) as sess:
                got = sess.run(inputs)
        except EdgeAIError as exc:
            return f"smoke test failed: {type(exc).__name__}: {exc}"
        for out_name, want in expected.items():
            if out_name not in got:
                return f"smoke test failed: output {out_name!r} is missing"
            if got[out_name].shape != want.shape or not np.allclose(
                got[out_name], want, rtol=tol.rtol if tol else 1e-4, atol=tol.atol if tol else 1e-5
            ):
                diff = (
                    float(np.max(np.abs(got[out_name].astype(np.float64) - want)))
                    if got[out_name].shape == want.shape
                    else float("nan")
                )
                return f"smoke test failed: output {out_name!r} differs from the expected (max abs diff {diff:g})"
        return ""
