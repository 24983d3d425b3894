"""Distillation: the loss against its formula in numpy, and a student trained on the digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeai.optimize import OptimizationError

torch = pytest.importorskip("torch")

from edgeai.optimize.distillation import distill, distillation_loss  # noqa: E402


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_loss_matches_hinton_formula_in_numpy() -> None:
    rng = np.random.default_rng(0)
    s, t = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    y = rng.integers(0, 5, 6)
    temp, alpha = 3.0, 0.7
    p_t = np.exp(_log_softmax(t / temp))
    kl = np.sum(p_t * (np.log(p_t) - _log_softmax(s / temp))) / len(s)
    ce = -np.mean(_log_softmax(s)[np.arange(6), y])
    expected = alpha * temp**2 * kl + (1 - alpha) * ce
    got = distillation_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), temperature=temp, alpha=alpha)
    assert float(got) == pytest.approx(expected, rel=1e-9)
    soft_only = distillation_loss(torch.tensor(s), torch.tensor(t), temperature=temp)
    assert float(soft_only) == pytest.approx(temp**2 * kl, rel=1e-9)


def _mlp(hidden: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)
    )


def test_distilled_student_learns_the_teacher_and_exports(digits: dict[str, np.ndarray], tmp_path: Path) -> None:
    import onnxruntime as ort

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add contention on a shared CI machine
    try:
        _train_and_check(digits, tmp_path, ort)
    finally:
        torch.set_num_threads(threads)


def _train_and_check(digits: dict[str, np.ndarray], tmp_path: Path, ort) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    x_tr, y_tr = torch.from_numpy(digits["x_train"]), torch.from_numpy(digits["y_train"])
    x_te, y_te = torch.from_numpy(digits["x_test"]), torch.from_numpy(digits["y_test"])
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True)
    val = [(x_te, y_te)]
    teacher = _mlp(128)
    opt = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    for _ in range(8):
        for xb, yb in train:
            loss = torch.nn.functional.cross_entropy(teacher(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    student = _mlp(16)
    before = float((student(x_te).argmax(1) == teacher(x_te).argmax(1)).float().mean())
    result = distill(
        student,
        teacher,
        train,
        epochs=20,
        temperature=4.0,
        alpha=0.9,
        lr=1e-2,
        val_loader=val,
        export_path=tmp_path / "student.onnx",
        input_names=["image"],
        progress=False,
    )
    assert result.teacher_val_accuracy is not None and result.teacher_val_accuracy > 0.9
    assert result.train_loss[-1] < result.train_loss[0]
    assert result.val_agreement[-1] > max(0.85, before)
    assert result.val_accuracy[-1] > 0.85
    sess = ort.InferenceSession(str(tmp_path / "student.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = student(x_te[:32]).numpy()
    np.testing.assert_allclose(sess.run(None, {"image": digits["x_test"][:32]})[0], expected, atol=1e-5)


def test_distill_checks_its_arguments() -> None:
    s, t = _mlp(4), _mlp(4)
    with pytest.raises(OptimizationError, match="temperature"):
        distill(s, t, [], temperature=0)
    with pytest.raises(OptimizationError, match="alpha"):
        distill(s, t, [], alpha=2)
    with pytest.raises(OptimizationError, match=r"torch\.nn\.Module"):
        distill(object(), t, [])
    with pytest.raises(OptimizationError, match="no batches"):
        distill(s, t, [], progress=False)
