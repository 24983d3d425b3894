"""The op registry is honest about opset versions (schema versions from onnx.defs)."""

from __future__ import annotations

import onnx.defs
import pytest

import edgeai.ops
from edgeai.ops import _base
from edgeai.ops._base import Op, claimed_versions, lookup, register, resolve_version, schema_versions


@pytest.fixture
def empty_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_base, "_REGISTRY", {})


def test_model_opset_resolves_to_the_schema_version() -> None:
    assert schema_versions("Relu")[:4] == (1, 6, 13, 14)
    assert [resolve_version("Relu", "", v) for v in (1, 5, 6, 12, 13, 20)] == [1, 1, 6, 6, 13, 14]
    assert resolve_version("Gelu", "", 13) is None  # Gelu first appears in opset 20
    assert resolve_version("Whatever", "com.vendor", 4) == 4


def test_a_registration_covers_its_since_up_to_until(empty_registry: None) -> None:
    @register("Relu", since=6, until=13)
    class Relu6(Op):
        pass

    assert lookup("Relu", "", 5) is None  # schema 1 is not covered
    assert lookup("Relu", "", 6) is Relu6 and lookup("Relu", "", 13) is Relu6
    assert lookup("Relu", "", 14) is None and lookup("Relu", "", 21) is None
    assert claimed_versions("Relu") == (6, 13)


def test_a_registration_ends_where_the_next_begins(empty_registry: None) -> None:
    @register("Relu", since=6)
    class Relu6(Op):
        pass

    @register("Relu", since=14)
    class Relu14(Op):
        pass

    assert lookup("Relu", "", 13) is Relu6
    assert lookup("Relu", "", 14) is Relu14 and lookup("Relu", "ai.onnx", 22) is Relu14
    assert claimed_versions("Relu")[:3] == (6, 13, 14)
    assert 1 not in claimed_versions("Relu")


def test_until_before_since_is_rejected() -> None:
    with pytest.raises(ValueError, match="until"):
        register("Relu", since=14, until=6)


def test_supported_lists_only_real_schema_versions() -> None:
    claimed = edgeai.ops.supported()
    by_op = {(c.domain, c.op_type): c.versions for c in claimed}
    for (domain, op_type), versions in by_op.items():
        known = schema_versions(op_type, domain)
        if known:
            assert set(versions) <= set(known), (domain, op_type)
            assert list(versions) == sorted(versions)
    for op in ("Constant", "Identity", "If", "Loop", "Scan", "SequenceMap"):
        assert ("", op) in by_op
    assert 8 in by_op[("", "Scan")] and 9 in by_op[("", "Scan")]
    newest = onnx.defs.onnx_opset_version()
    assert all(v <= newest for versions in by_op.values() for v in versions)
