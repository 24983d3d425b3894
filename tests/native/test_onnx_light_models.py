"""The real architectures of onnx's ``backend/test/data/light`` on the native engine.

Each model (AlexNet, DenseNet-121, Inception v1/v2, ResNet-50, ShuffleNet,
SqueezeNet, VGG-19, ZFNet-512; weights shrunk by onnx to keep the files small)
is fed the input onnx's runner feeds (``arange(n) / n``) and compared with
its stored ``*_output_<i>.pb`` at the runner's tolerances. A model is
collected only when every op it uses is claimed by the native registry.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx_node_data import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    assert_outputs_match,
    light_model_paths,
    load_light_case,
    unclaimed_ops,
)

import edgeai

CLAIMED = [p for p in light_model_paths() if not unclaimed_ops(p)]


@pytest.mark.slow
@pytest.mark.parametrize("model_path", CLAIMED, ids=[p.stem for p in CLAIMED])
def test_light_model_matches_stored_outputs(model_path: Path) -> None:
    case = load_light_case(model_path)
    with edgeai.Session(model_path, device="native") as sess:
        assert sess.device.id == "native:cpu"
        feeds = dict(zip([s.name for s in sess.inputs], case.inputs))
        outputs = sess.run(None, feeds)
    assert_outputs_match(case.outputs, outputs, DEFAULT_RTOL, DEFAULT_ATOL)


def test_every_light_model_is_claimed() -> None:
    """All nine architectures run natively; a newly unclaimed op shows up here by name."""
    missing = {p.stem: unclaimed_ops(p) for p in light_model_paths() if unclaimed_ops(p)}
    assert len(light_model_paths()) == 9
    assert missing == {}
