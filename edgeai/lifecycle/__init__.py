"""Model lifecycle: signed bundles, the on-device store, over-the-air updates, rollout.

Example:
    >>> from edgeai.lifecycle import bucket
    >>> 0.0 <= bucket("device-42", experiment="digits-2.0") < 100.0
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeai._lazy import lazy_attributes

if TYPE_CHECKING:  # pragma: no cover
    from edgeai.lifecycle.bundle import (
        Bundle,
        BundleMetadata,
        create_bundle,
        inspect_bundle,
        read_bundle,
        write_bundle,
    )
    from edgeai.lifecycle.rollout import ArmMetrics, RegressionPolicy, Rollout, bucket
    from edgeai.lifecycle.store import ModelStore, StoreError
    from edgeai.lifecycle.update import UpdateClient, UpdateResult, download
    from edgeai.lifecycle.version import SemVer

__all__ = [
    "ArmMetrics",
    "Bundle",
    "BundleMetadata",
    "ModelStore",
    "RegressionPolicy",
    "Rollout",
    "SemVer",
    "StoreError",
    "UpdateClient",
    "UpdateResult",
    "bucket",
    "create_bundle",
    "download",
    "inspect_bundle",
    "read_bundle",
    "write_bundle",
]

_LAZY = {
    "Bundle": "edgeai.lifecycle.bundle",
    "BundleMetadata": "edgeai.lifecycle.bundle",
    "create_bundle": "edgeai.lifecycle.bundle",
    "inspect_bundle": "edgeai.lifecycle.bundle",
    "read_bundle": "edgeai.lifecycle.bundle",
    "write_bundle": "edgeai.lifecycle.bundle",
    "ModelStore": "edgeai.lifecycle.store",
    "StoreError": "edgeai.lifecycle.store",
    "UpdateClient": "edgeai.lifecycle.update",
    "UpdateResult": "edgeai.lifecycle.update",
    "download": "edgeai.lifecycle.update",
    "ArmMetrics": "edgeai.lifecycle.rollout",
    "RegressionPolicy": "edgeai.lifecycle.rollout",
    "Rollout": "edgeai.lifecycle.rollout",
    "bucket": "edgeai.lifecycle.rollout",
    "SemVer": "edgeai.lifecycle.version",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
