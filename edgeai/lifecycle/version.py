"""Semantic versions (https://semver.org 2.0.0) and their precedence.

Example:
    >>> from edgeai.lifecycle.version import SemVer
    >>> SemVer.parse("1.2.0") > SemVer.parse("1.2.0-rc.1") > SemVer.parse("1.1.9")
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from edgeai.errors import ModelFormatError

__all__ = ["SemVer"]

# The regular expression published on semver.org.
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


@total_ordering
@dataclass(frozen=True)
class SemVer:
    """A parsed semantic version; ordered by semver precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str = ""

    @classmethod
    def parse(cls, text: str) -> SemVer:
        m = _SEMVER.match(str(text))
        if m is None:
            raise ModelFormatError(
                f"{text!r} is not a semantic version: use MAJOR.MINOR.PATCH, e.g. '1.4.0' or '2.0.0-rc.1'"
            )
        pre = tuple(m.group(4).split(".")) if m.group(4) else ()
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)), pre, m.group(5) or "")

    def _key(self) -> tuple[object, ...]:
        # A release ranks above its pre-releases; numeric identifiers rank below alphanumeric ones.
        pre: tuple[object, ...] = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + self.build
        return text
