"""The on-device model store: versioned bundles, atomic activation, rollback.

Layout of a store folder::

    state.json           the only mutable record: active version, history, installed versions
    versions/<v>.eai     one verified bundle per installed version
    tmp/                 partial writes; emptied when the store is opened
    .lock                serialises writers across processes

Crash safety comes from one rule: a bundle file is complete (written, fsynced,
renamed, folder fsynced) before ``state.json`` names it, and it is deleted only
after a new ``state.json`` has stopped naming it. ``state.json`` itself is
replaced atomically. A process killed at any instant therefore leaves either
the old or the new state, both pointing at complete files; leftovers are
cleaned when the store is next opened.

For tests, ``EDGEAI_STORE_CRASH_AT=k`` makes the process exit at the k-th
write step (fault injection; never set it in production).

Example:
    >>> import tempfile, edgeai
    >>> from edgeai.lifecycle import ModelStore, create_bundle
    >>> from edgeai.security import generate_signing_key
    >>> sk = generate_signing_key()
    >>> store = ModelStore(tempfile.mkdtemp(), trusted_keys=[sk.public_key()])
    >>> v1 = create_bundle(edgeai.demo.model_path(), name="digits", version="1.0.0", signing_key=sk)
    >>> store.install(v1, activate=True).version
    '1.0.0'
    >>> store.active
    '1.0.0'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgeai.errors import IntegrityError, ModelNotFoundError, RollbackError, StoreError
from edgeai.lifecycle.bundle import read_bundle
from edgeai.lifecycle.version import SemVer
from edgeai.security._atomic import fsync_dir
from edgeai.security.trust import DEFAULT_MAX_BUNDLE_BYTES, TrustPolicy

__all__ = ["CRASH_ENV", "InstalledVersion", "ModelStore", "StoreError", "StoreState"]

CRASH_ENV = "EDGEAI_STORE_CRASH_AT"
_STATE = "state.json"
_crash_counter = 0


def _step(label: str) -> None:
    """A write step; with ``EDGEAI_STORE_CRASH_AT=k`` the k-th one kills the process (tests)."""
    global _crash_counter
    at = os.environ.get(CRASH_ENV)
    if not at:
        return
    _crash_counter += 1
    if _crash_counter == int(at):
        os.write(2, f"edgeai store: simulated crash at step {_crash_counter} ({label})\n".encode())
        os._exit(86)


class InstalledVersion(BaseModel):
    """One installed bundle."""

    model_config = ConfigDict(extra="forbid")
    version: str
    file: str
    sha256: str
    size: int
    installed_at: str
    active: bool = False


class StoreState(BaseModel):
    """The content of ``state.json``."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = 1
    name: str | None = None
    target: str | None = None
    active: str | None = None
    history: list[str] = Field(default_factory=list, description="previously active, oldest first")
    highest: str | None = Field(default=None, description="anti-rollback floor: newest ever installed")
    installed: dict[str, InstalledVersion] = Field(default_factory=dict)


class ModelStore:
    """A folder of versioned, verified bundles with one active version.

    Args:
        root: the store's folder (created if absent).
        trusted_keys: the keys bundles must be signed by (see :class:`~edgeai.security.TrustPolicy`).
        name: the model name bundles must carry (default: the first installed one's).
        target: the target bundles must be built for (default: not checked).
        keep: how many versions to keep installed (the active one always stays).
        max_size: the largest bundle accepted, in bytes.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        trusted_keys: Any = None,
        name: str | None = None,
        target: str | None = None,
        keep: int = 3,
        max_size: int = DEFAULT_MAX_BUNDLE_BYTES,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self.root = Path(root)
        self.keep = keep
        self.max_size = max_size
        self._policy = TrustPolicy.coerce(trusted_keys)
        (self.root / "versions").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        with self._locked():
            state = self._read_state()
            self._name = name or state.name
            self._target = target or state.target
            self._recover(state)

    # -- state ----------------------------------------------------------------
    def _read_state(self) -> StoreState:
        path = self.root / _STATE
        if not path.exists():
            return StoreState()
        try:
            return StoreState.model_validate_json(path.read_bytes())
        except ValueError as exc:  # only a foreign writer can cause this: state.json is replaced atomically
            raise IntegrityError(f"store state {str(path)!r} is corrupted: {exc}") from exc

    def _write_state(self, state: StoreState) -> None:
        self._write_file(self.root / _STATE, state.model_dump_json(indent=2).encode())

    def _write_file(self, target: Path, data: bytes) -> None:
        tmp = self.root / "tmp" / f"{target.name}.{os.getpid()}.part"
        with tmp.open("wb") as f:
            half = len(data) // 2
            f.write(data[:half])
            f.flush()
            _step(f"half of {target.name} written")
            f.write(data[half:])
            f.flush()
            os.fsync(f.fileno())
        _step(f"{target.name} written to tmp")
        os.replace(tmp, target)
        _step(f"{target.name} renamed")
        fsync_dir(target.parent)
        _step(f"{target.parent.name}/ synced")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            except ImportError:  # Windows: one writer per store is the caller's duty
                pass
            yield
        finally:
            os.close(fd)

    def _recover(self, state: StoreState) -> None:
        """Delete what a killed writer left: partial files and bundles no state names."""
        for leftover in (self.root / "tmp").iterdir():
            if leftover.is_file():
                leftover.unlink()
        named = {Path(v.file).name for v in state.installed.values()}
        for file in (self.root / "versions").iterdir():
            if file.name not in named:
                file.unlink()

    # -- queries --------------------------------------------------------------
    @property
    def state(self) -> StoreState:
        """A snapshot of the store's state."""
        return self._read_state()

    @property
    def active(self) -> str | None:
        """The active version, or ``None`` when nothing is active yet."""
        return self._read_state().active

    def active_path(self) -> Path:
        """The active bundle's file."""
        state = self._read_state()
        if state.active is None:
            raise StoreError(f"no version is active in store {str(self.root)!r}; install one first")
        return self.root / state.installed[state.active].file

    def list(self) -> list[InstalledVersion]:
        """Installed versions, newest first, with the active one flagged."""
        state = self._read_state()
        out = [v.model_copy(update={"active": v.version == state.active}) for v in state.installed.values()]
        return sorted(out, key=lambda v: SemVer.parse(v.version), reverse=True)

    def verify(self) -> list[str]:
        """Problems with the store (empty list: valid). Checks every named file's hash."""
        state = self._read_state()
        problems = []
        if state.active is not None and state.active not in state.installed:
            problems.append(f"active version {state.active} is not installed")
        for v in state.installed.values():
            path = self.root / v.file
            if not path.is_file():
                problems.append(f"{v.version}: file {v.file} is missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != v.sha256:
                problems.append(f"{v.version}: file {v.file} does not match its recorded SHA-256")
        return problems

    def policy(self, *, check_expiry: bool = False) -> TrustPolicy:
        """The trust policy for installed bundles (expiry is checked at install, not at load)."""
        return TrustPolicy(
            self._policy.keys,
            name=self._name,
            target=self._target,
            max_size=self.max_size,
            check_expiry=check_expiry,
        )

    def open_session(self, *, key: bytes | str | None = None, **kwargs: Any) -> Any:
        """An :class:`edgeai.Session` over the active version (verified again as it loads)."""
        import edgeai

        return edgeai.Session(self.active_path(), key=key, trusted_keys=self.policy(), **kwargs)

    # -- changes --------------------------------------------------------------
    def install(self, source: Any, *, activate: bool = False) -> InstalledVersion:
        """Verify a bundle (path or bytes) and add it to the store; optionally activate it.

        Raises a :class:`~edgeai.errors.SecurityError` when the bundle fails
        any check, including :class:`~edgeai.errors.RollbackError` when it is
        older than the newest version ever installed here.
        """
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise ModelNotFoundError(f"bundle {str(path)!r} does not exist")
            self.policy().check_size(path.stat().st_size, f"bundle {str(path)!r}")
            data = path.read_bytes()
        with self._locked():
            state = self._read_state()
            policy = self.policy(check_expiry=True)
            policy.min_version = state.highest
            bundle = read_bundle(data, trusted_keys=policy, decrypt_sections=False)
            meta = bundle.metadata
            digest = hashlib.sha256(data).hexdigest()
            existing = state.installed.get(meta.version)
            if existing is not None and existing.sha256 != digest:
                raise RollbackError(
                    f"version {meta.version} is already installed with different content; "
                    "a changed model needs a new version number"
                )
            if existing is None:
                file = f"versions/{meta.version}.eai"
                self._write_file(self.root / file, data)
                existing = InstalledVersion(
                    version=meta.version,
                    file=file,
                    sha256=digest,
                    size=len(data),
                    installed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                )
                state.installed[meta.version] = existing
                if state.highest is None or SemVer.parse(meta.version) > SemVer.parse(state.highest):
                    state.highest = meta.version
                state.name = state.name or meta.name
                self._name = state.name
                if not activate:
                    self._commit(state)
            if activate:
                self._activate(state, meta.version, force_commit=True)
            return existing.model_copy(update={"active": activate or state.active == meta.version})

    def activate(self, version: str) -> None:
        """Make ``version`` (already installed) the active one, atomically."""
        with self._locked():
            self._activate(self._read_state(), version)

    def rollback(self) -> str:
        """Re-activate the previously active version still installed; returns it."""
        with self._locked():
            state = self._read_state()
            while state.history:
                previous = state.history.pop()
                if previous in state.installed and previous != state.active:
                    self._activate(state, previous, record=False)
                    return previous
            raise StoreError(f"store {str(self.root)!r} has no earlier version to roll back to")

    def _activate(self, state: StoreState, version: str, *, record: bool = True, force_commit: bool = False) -> None:
        if version not in state.installed:
            raise StoreError(
                f"version {version} is not installed in {str(self.root)!r}; installed: "
                f"{sorted(state.installed, key=SemVer.parse)}"
            )
        if state.active != version:
            if record and state.active is not None:
                state.history.append(state.active)
            state.active = version
        elif not force_commit:
            return
        self._commit(state)

    def _commit(self, state: StoreState) -> None:
        """Prune to ``keep`` versions, write the state atomically, then delete unnamed files."""
        doomed = self._prune(state)
        self._write_state(state)
        for file in doomed:  # only now that no state names them
            (self.root / file).unlink(missing_ok=True)
            _step(f"{file} removed")
        if doomed:
            fsync_dir(self.root / "versions")

    def _prune(self, state: StoreState) -> list[str]:
        """Drop all but the ``keep`` newest versions (never the active one) from ``state``."""
        newest = sorted(state.installed, key=SemVer.parse, reverse=True)
        keep = set(newest[: self.keep]) | {state.active}
        doomed = [state.installed.pop(v).file for v in newest if v not in keep]
        state.history = [v for v in state.history if v in state.installed]
        return doomed

    def uninstall(self, version: str) -> None:
        """Remove an installed version that is not active."""
        with self._locked():
            state = self._read_state()
            if version not in state.installed:
                raise StoreError(f"version {version} is not installed in {str(self.root)!r}")
            if state.active == version:
                raise StoreError(f"version {version} is active; activate another version first")
            file = state.installed.pop(version).file
            state.history = [v for v in state.history if v != version]
            self._write_state(state)
            (self.root / file).unlink(missing_ok=True)
            _step(f"{file} removed")

    def remove(self) -> None:
        """Delete the whole store folder."""
        shutil.rmtree(self.root)
