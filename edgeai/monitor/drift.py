"""Data drift: Population Stability Index and the two-sample Kolmogorov-Smirnov test.

Inputs are summarised into scalar *features* per sample (see
:func:`input_features`) and compared, feature by feature, between a reference
window and the current one. Prediction confidence is compared the same way.

Example:
    >>> import numpy as np
    >>> from edgeai.monitor.drift import psi, ks_2samp
    >>> rng = np.random.default_rng(0)
    >>> ref, same, moved = rng.normal(0, 1, 5000), rng.normal(0, 1, 5000), rng.normal(1, 1, 5000)
    >>> psi(ref, same) < 0.1 < 0.2 < psi(ref, moved)
    True
    >>> ks_2samp(ref, moved)[1] < 1e-6
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict

__all__ = ["DriftReport", "FeatureDrift", "input_features", "kolmogorov_sf", "ks_2samp", "psi"]


def psi(reference: np.ndarray, current: np.ndarray, *, bins: int = 10, eps: float = 1e-4) -> float:
    """Population Stability Index of ``current`` against ``reference``.

    Bins are the reference's deciles (``bins`` quantiles), so each holds about
    the same reference mass; empty bins are floored at ``eps``. Conventional
    reading: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant shift.
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    cur = np.asarray(current, dtype=np.float64).ravel()
    if ref.size == 0 or cur.size == 0:
        raise ValueError("psi needs non-empty reference and current samples")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1) / ref.size
    actual = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1) / cur.size
    expected = np.maximum(expected, eps)
    actual = np.maximum(actual, eps)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def kolmogorov_sf(z: float) -> float:
    """P(K > z) for the Kolmogorov distribution (the asymptotic KS p-value)."""
    if z <= 0:
        return 1.0
    if z < 1.18:  # the theta-function form converges fast for small z
        y = math.exp(-(math.pi**2) / (8 * z * z))
        s = sum(y ** ((2 * k - 1) ** 2) for k in range(1, 6))
        return float(min(1.0, max(0.0, 1.0 - math.sqrt(2 * math.pi) / z * s)))
    s = sum((-1) ** (k - 1) * math.exp(-2 * k * k * z * z) for k in range(1, 101))
    return float(min(1.0, max(0.0, 2 * s)))


def ks_2samp(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic D and its asymptotic two-sided p-value."""
    x = np.sort(np.asarray(a, dtype=np.float64).ravel())
    y = np.sort(np.asarray(b, dtype=np.float64).ravel())
    if x.size == 0 or y.size == 0:
        raise ValueError("ks_2samp needs two non-empty samples")
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / x.size
    cdf_y = np.searchsorted(y, grid, side="right") / y.size
    d = float(np.max(np.abs(cdf_x - cdf_y)))
    en = x.size * y.size / (x.size + y.size)
    return d, kolmogorov_sf(math.sqrt(en) * d)


def input_features(feeds: Mapping[str, np.ndarray], *, max_columns: int = 64) -> dict[str, np.ndarray]:
    """Scalar features per sample (axis 0 is the batch).

    A 2-D input with at most ``max_columns`` columns is tabular: each column is
    a feature (``"x[3]"``). Anything else (images, sequences) is summarised per
    sample by its mean and standard deviation (``"image.mean"``, ``"image.std"``).
    """
    out: dict[str, np.ndarray] = {}
    for name, value in feeds.items():
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf" or arr.size == 0:
            continue
        if arr.ndim == 2 and arr.shape[1] <= max_columns:
            for j in range(arr.shape[1]):
                out[f"{name}[{j}]"] = arr[:, j].astype(np.float64)
            continue
        flat = arr.reshape(arr.shape[0], -1) if arr.ndim >= 2 else arr.reshape(1, -1)
        out[f"{name}.mean"] = flat.mean(axis=1, dtype=np.float64)
        out[f"{name}.std"] = flat.std(axis=1, dtype=np.float64)
    return out


class FeatureDrift(BaseModel):
    """Drift of one feature (or of prediction confidence)."""

    model_config = ConfigDict(frozen=True)
    feature: str
    psi: float
    ks_statistic: float
    ks_pvalue: float
    reference_mean: float
    current_mean: float
    alert: bool


class DriftReport(BaseModel):
    """Per-feature drift against the reference window, and the alerts raised."""

    reference_size: int
    current_size: int
    features: list[FeatureDrift]
    alerts: list[str]

    @property
    def drifted(self) -> bool:
        return bool(self.alerts)


def compare(
    feature: str, reference: np.ndarray, current: np.ndarray, *, psi_threshold: float, ks_alpha: float
) -> FeatureDrift:
    """Compare one feature's two windows."""
    p = psi(reference, current)
    d, pv = ks_2samp(reference, current)
    return FeatureDrift(
        feature=feature,
        psi=p,
        ks_statistic=d,
        ks_pvalue=pv,
        reference_mean=float(np.mean(reference)),
        current_mean=float(np.mean(current)),
        alert=p > psi_threshold or pv < ks_alpha,
    )
