"""Knowledge distillation (needs torch): train a small student on a teacher's soft targets.

The loss is Hinton et al.'s (2015): ``alpha * T² * KL(softmax(t/T) || softmax(s/T))
+ (1 - alpha) * cross_entropy(s, labels)``, where ``s`` and ``t`` are the
student's and teacher's logits and ``T`` the temperature. The ``T²`` keeps the
soft-target gradients on the same scale as the hard-label ones.

Example:
    >>> import torch
    >>> from edgeai.optimize.distillation import distillation_loss
    >>> s = torch.tensor([[2.0, 0.0]]); t = torch.tensor([[2.0, 0.0]])
    >>> float(distillation_loss(s, t, temperature=2.0, alpha=1.0))
    0.0
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from edgeai._optional import import_optional
from edgeai.optimize._errors import OptimizationError

__all__ = ["DistillationResult", "distill", "distillation_loss"]


class DistillationResult(BaseModel):
    """What :func:`distill` did, epoch by epoch."""

    epochs: int
    temperature: float
    alpha: float
    train_loss: list[float] = Field(default_factory=list)
    """Mean distillation loss per epoch."""
    val_accuracy: list[float] = Field(default_factory=list)
    """Student top-1 on the validation loader per epoch (when it has labels)."""
    val_agreement: list[float] = Field(default_factory=list)
    """Share of validation samples where the student's top-1 equals the teacher's, per epoch."""
    teacher_val_accuracy: float | None = None
    path: str | None = None


def distillation_loss(
    student_logits: Any,
    teacher_logits: Any,
    labels: Any = None,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> Any:
    """Temperature-scaled soft-target loss, mixed with cross-entropy on ``labels`` when given."""
    torch = import_optional("torch", purpose="distillation")
    f = torch.nn.functional
    t = float(temperature)
    soft = f.kl_div(
        f.log_softmax(student_logits / t, dim=-1),
        f.log_softmax(teacher_logits / t, dim=-1),
        reduction="batchmean",
        log_target=True,
    ) * (t * t)
    if labels is None:
        return soft
    return alpha * soft + (1.0 - alpha) * f.cross_entropy(student_logits, labels)


def _split(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, (list, tuple)):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    return batch, None


def distill(
    student: Any,
    teacher: Any,
    train_loader: Iterable[Any],
    *,
    epochs: int = 1,
    temperature: float = 4.0,
    alpha: float = 0.9,
    optimizer: Any = None,
    lr: float = 1e-3,
    val_loader: Iterable[Any] | None = None,
    export_path: str | Path | None = None,
    example_input: Any = None,
    input_names: Sequence[str] = ("input",),
    output_names: Sequence[str] = ("logits",),
    progress: bool = True,
) -> DistillationResult:
    """Train ``student`` to match ``teacher`` (both torch modules returning logits).

    Args:
        student, teacher: ``torch.nn.Module``; the teacher is frozen (eval mode, no grad).
        train_loader: yields ``(inputs, labels)`` or ``inputs`` batches (a
            ``torch.utils.data.DataLoader`` or any iterable); without labels the loss is
            the soft-target term only.
        epochs: passes over ``train_loader``.
        temperature: softmax temperature ``T`` of the soft targets.
        alpha: weight of the soft-target term (``1 - alpha`` for the hard labels).
        optimizer: a torch optimizer over the student's parameters (default Adam(lr)).
        val_loader: batches ``(inputs, labels)`` to measure accuracy and agreement after each epoch.
        export_path: write the trained student to this ONNX file (atomically).
        example_input: an input batch for the export (default: the first training batch).
        input_names, output_names: names of the exported model's inputs and outputs.
        progress: show a progress bar.

    Returns:
        A :class:`DistillationResult`; the student is trained in place.
    """
    torch = import_optional("torch", purpose="distillation")
    from edgeai.optimize.calibrate import progress_bar

    if epochs < 1:
        raise OptimizationError(f"epochs must be at least 1, not {epochs}")
    if temperature <= 0:
        raise OptimizationError(f"temperature must be positive, not {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise OptimizationError(f"alpha must be in [0, 1], not {alpha}")
    if not isinstance(student, torch.nn.Module) or not isinstance(teacher, torch.nn.Module):
        raise OptimizationError("student and teacher must be torch.nn.Module instances returning logits")
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    opt = optimizer or torch.optim.Adam(student.parameters(), lr=lr)
    result = DistillationResult(epochs=epochs, temperature=temperature, alpha=alpha)
    first_input = None
    batches = len(train_loader) if hasattr(train_loader, "__len__") else None  # type: ignore[arg-type]
    with progress_bar((batches or 0) * epochs, "distilling", progress and batches is not None) as adv:
        for _ in range(epochs):
            student.train()
            total, count = 0.0, 0
            for batch in train_loader:
                x, y = _split(batch)
                if first_input is None:
                    first_input = x[:1]
                with torch.no_grad():
                    t_logits = teacher(x)
                loss = distillation_loss(student(x), t_logits, y, temperature=temperature, alpha=alpha)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(x)
                count += len(x)
                adv(1)
            if count == 0:
                raise OptimizationError("the training loader yielded no batches")
            result.train_loss.append(total / count)
            if val_loader is not None:
                _validate(torch, student, teacher, val_loader, result)
    student.eval()
    if export_path is not None:
        example = example_input if example_input is not None else first_input
        result.path = str(_export(torch, student, example, Path(export_path), input_names, output_names))
    return result


def _validate(torch: Any, student: Any, teacher: Any, loader: Iterable[Any], result: DistillationResult) -> None:
    student.eval()
    agree = correct = t_correct = n = 0
    has_labels = True
    with torch.no_grad():
        for batch in loader:
            x, y = _split(batch)
            s = student(x).argmax(-1)
            t = teacher(x).argmax(-1)
            agree += int((s == t).sum())
            if y is None:
                has_labels = False
            else:
                correct += int((s == y).sum())
                t_correct += int((t == y).sum())
            n += len(x)
    if n:
        result.val_agreement.append(agree / n)
        if has_labels:
            result.val_accuracy.append(correct / n)
            result.teacher_val_accuracy = t_correct / n


def _export(
    torch: Any,
    student: Any,
    example: Any,
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
) -> Path:
    if example is None:
        raise OptimizationError("export needs example_input (or a training batch to take one from)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        torch.onnx.export(
            student,
            (example,),
            tmp,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes={**{n: {0: "N"} for n in input_names}, **{n: {0: "N"} for n in output_names}},
            opset_version=17,
            dynamo=False,
        )
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
