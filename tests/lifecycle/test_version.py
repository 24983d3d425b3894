"""Semantic-version precedence against semver.org's published example and tuple order."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeai.errors import ModelFormatError
from edgeai.lifecycle import SemVer

# semver.org 2.0.0, section 11.4: "Example: 1.0.0-alpha < 1.0.0-alpha.1 < ... < 1.0.0."
SEMVER_ORG = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
]


def test_published_precedence() -> None:
    parsed = [SemVer.parse(v) for v in SEMVER_ORG]
    assert sorted(reversed(parsed)) == parsed
    assert all(a < b for a, b in itertools.pairwise(parsed))


def test_build_metadata_is_ignored_and_round_trips() -> None:
    assert SemVer.parse("1.2.3+build.7") == SemVer.parse("1.2.3")
    assert str(SemVer.parse("1.2.3-rc.1+build.7")) == "1.2.3-rc.1+build.7"


@pytest.mark.parametrize("bad", ["1", "1.2", "01.2.3", "1.2.3-", "v1.2.3", "1.2.3-01", ""])
def test_invalid_versions(bad: str) -> None:
    with pytest.raises(ModelFormatError, match="not a semantic version"):
        SemVer.parse(bad)


triples = st.tuples(*(st.integers(0, 10_000) for _ in range(3)))


@given(triples, triples)
def test_release_order_is_numeric_tuple_order(a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    va, vb = SemVer.parse(".".join(map(str, a))), SemVer.parse(".".join(map(str, b)))
    assert (va < vb) == (a < b)
    assert (va == vb) == (a == b)
