"""What a device checks before it uses a bundle: the threats The Update Framework lists.

======================  ==========================================  =====================
threat (TUF)            check                                       error
======================  ==========================================  =====================
arbitrary software      Ed25519 signature by a trusted key          ``SignatureError``
tampered bytes          SHA-256 of every section, exact file length ``IntegrityError``
rollback                version not older than ``min_version``      ``RollbackError``
freeze                  ``expires`` in the future                   ``ExpiredError``
mix-and-match           ``name`` and ``target`` as expected         ``MixAndMatchError``
endless data            size limit before and while reading         ``SizeLimitError``
======================  ==========================================  =====================

python-tuf was considered: it secures a *repository* of targets with four
signed roles (root, targets, snapshot, timestamp) and their own files. A
bundle is one self-contained file, so the same checks are done on its one
signed header instead; the store keeps the anti-rollback floor.

Example:
    >>> from edgeai.security import TrustPolicy, generate_signing_key
    >>> policy = TrustPolicy([generate_signing_key().public_key()], name="digits", min_version="1.0.0")
    >>> policy.max_size > 0
    True
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from edgeai.errors import (
    ExpiredError,
    IntegrityError,
    MixAndMatchError,
    RollbackError,
    SignatureError,
    SizeLimitError,
)
from edgeai.lifecycle.version import SemVer
from edgeai.security.keys import TrustedKeys

__all__ = ["DEFAULT_MAX_BUNDLE_BYTES", "SIGNATURE_CONTEXT", "TrustPolicy"]

DEFAULT_MAX_BUNDLE_BYTES = 1 << 30
"""1 GiB: larger bundles (or downloads) are refused unless the policy says otherwise."""

SIGNATURE_CONTEXT = b"edgeai-bundle-v1\x00"
"""Prefixed to the signed header so a bundle signature cannot be replayed as another message."""


@dataclass
class TrustPolicy:
    """The checks a bundle must pass. ``Session(..., trusted_keys=TrustPolicy(...))`` accepts one.

    Args:
        trusted_keys: keys (or key files, folders) whose signatures are accepted;
            ``None`` reads ``$EDGEAI_TRUSTED_KEYS`` or ``~/.config/edgeai/trusted_keys``.
        name: the model name the bundle must carry (``None``: any).
        target: the target the bundle must be built for (``None``: any).
        min_version: the installed version; an older bundle raises ``RollbackError``.
        max_size: the largest bundle accepted, in bytes.
        check_expiry: refuse bundles past their ``expires`` time.
        now: the time to check expiry against (default: the current UTC time).
    """

    trusted_keys: Any = None
    name: str | None = None
    target: str | None = None
    min_version: str | None = None
    max_size: int = DEFAULT_MAX_BUNDLE_BYTES
    check_expiry: bool = True
    now: datetime | None = None
    keys: TrustedKeys = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.keys = TrustedKeys(self.trusted_keys)
        if self.min_version is not None:
            SemVer.parse(self.min_version)

    @classmethod
    def coerce(cls, value: Any) -> TrustPolicy:
        """A ``TrustPolicy`` from a policy, keys, or ``None`` (the default key sources)."""
        return value if isinstance(value, TrustPolicy) else cls(trusted_keys=value)

    # -- the checks, in the order they run ---------------------------------------
    def check_size(self, size: int, what: str) -> None:
        if size > self.max_size:
            raise SizeLimitError(
                f"{what} is {size:,} bytes, more than the limit of {self.max_size:,} bytes; "
                "raise max_size if the model really is that large"
            )

    def check_signatures(self, message: bytes, signatures: Sequence[Mapping[str, Any]], what: str) -> str:
        """Return the id of the trusted key that signed ``message``; raise ``SignatureError`` if none."""
        from cryptography.exceptions import InvalidSignature

        if not len(self.keys):
            raise SignatureError(
                f"cannot verify {what}: there are no trusted keys ({self.keys.origin}). Pass "
                "trusted_keys=[public key file] or set $EDGEAI_TRUSTED_KEYS"
            )
        if not signatures:
            raise SignatureError(f"{what} is not signed; sign it with `edgeai bundle create --signing-key`")
        seen = []
        for sig in signatures:
            kid = str(sig.get("keyid", ""))
            seen.append(kid[:12])
            pub = self.keys.get(kid)
            if pub is None:
                continue
            try:
                raw = base64.b64decode(str(sig.get("sig", "")), validate=True)
                pub.verify(raw, SIGNATURE_CONTEXT + message)
            except (InvalidSignature, ValueError) as exc:
                raise SignatureError(
                    f"{what}: the signature by trusted key {kid[:12]} is invalid; the bundle header "
                    "was altered after signing"
                ) from exc
            return kid
        raise SignatureError(
            f"{what} is signed by unknown key(s) {seen}; trusted keys are "
            f"{[k[:12] for k in self.keys.ids()]} ({self.keys.origin})"
        )

    def check_metadata(self, meta: Mapping[str, Any], what: str) -> None:
        """Expiry (freeze), name and target (mix-and-match), version (rollback)."""
        expires = meta.get("expires")
        if self.check_expiry and expires:
            try:
                when = datetime.fromisoformat(str(expires))
            except ValueError as exc:
                raise IntegrityError(f"{what}: its expiry {expires!r} is not an ISO-8601 time") from exc
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            now = self.now or datetime.now(timezone.utc)
            if now >= when:
                raise ExpiredError(
                    f"{what} expired at {when.isoformat()} (now {now.isoformat()}): a stale bundle may "
                    "hide newer fixes (freeze attack). Fetch a freshly signed bundle"
                )
        if self.name is not None and meta.get("name") != self.name:
            raise MixAndMatchError(f"{what} is for model {meta.get('name')!r}, but {self.name!r} was expected")
        if self.target is not None and meta.get("target") != self.target:
            raise MixAndMatchError(
                f"{what} is built for target {meta.get('target')!r}, but this device is {self.target!r}"
            )
        if self.min_version is not None:
            version = SemVer.parse(str(meta.get("version")))
            if version < SemVer.parse(self.min_version):
                raise RollbackError(
                    f"{what} has version {version}, older than the installed {self.min_version}; "
                    "downgrades are refused (anti-rollback)"
                )
