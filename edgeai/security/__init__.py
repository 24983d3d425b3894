"""Security: signing keys, bundle encryption keys, trust policy, input validation.

Example:
    >>> from edgeai.security import InputPolicy, InputRule, generate_signing_key
    >>> key = generate_signing_key()
    >>> policy = InputPolicy({"x": InputRule(dtypes=["float32"])})
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeai._lazy import lazy_attributes

if TYPE_CHECKING:  # pragma: no cover
    from edgeai.security.encryption import generate_encryption_key, resolve_encryption_key
    from edgeai.security.input_policy import InputPolicy, InputRule
    from edgeai.security.keys import (
        TrustedKeys,
        generate_signing_key,
        key_id,
        load_public_key,
        load_signing_key,
        save_public_key,
        save_signing_key,
    )
    from edgeai.security.trust import TrustPolicy

__all__ = [
    "InputPolicy",
    "InputRule",
    "TrustPolicy",
    "TrustedKeys",
    "generate_encryption_key",
    "generate_signing_key",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "resolve_encryption_key",
    "save_public_key",
    "save_signing_key",
]

_LAZY = {
    "InputPolicy": "edgeai.security.input_policy",
    "InputRule": "edgeai.security.input_policy",
    "TrustPolicy": "edgeai.security.trust",
    "TrustedKeys": "edgeai.security.keys",
    "generate_signing_key": "edgeai.security.keys",
    "key_id": "edgeai.security.keys",
    "load_public_key": "edgeai.security.keys",
    "load_signing_key": "edgeai.security.keys",
    "save_public_key": "edgeai.security.keys",
    "save_signing_key": "edgeai.security.keys",
    "generate_encryption_key": "edgeai.security.encryption",
    "resolve_encryption_key": "edgeai.security.encryption",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
