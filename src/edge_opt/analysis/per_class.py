"""Per-class accuracy: which classes a compressed candidate got worse at.

``per_class_accuracy`` computes (pure); ``per_class_rows`` puts the reference model and the
recommended candidate side by side; ``per_class_markdown`` formats them for the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edge_opt.candidates.columns import C


@dataclass(frozen=True)
class ClassAccuracy:
    """Top-1 accuracy on the images of one class (``accuracy`` None when it has none)."""

    class_index: int
    class_name: str
    images: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.images if self.images else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "accuracy": self.accuracy}


def per_class_accuracy(
    predictions: Sequence[int] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
) -> list[ClassAccuracy]:
    """Accuracy per class from predicted and true labels (same order, same length).

    Raises:
        ValueError: the two lengths differ, or a label is outside the classes.
    """
    pred = np.asarray(predictions, dtype=np.int64).reshape(-1)
    true = np.asarray(labels, dtype=np.int64).reshape(-1)
    if pred.shape != true.shape:
        raise ValueError(f"{len(pred)} predictions for {len(true)} labels; they must pair up")
    k = len(class_names)
    if true.size and (true.min() < 0 or true.max() >= k):
        raise ValueError(f"labels outside 0..{k - 1} for {k} class names")
    images = np.bincount(true, minlength=k)
    correct = np.bincount(true[pred == true], minlength=k)
    return [
        ClassAccuracy(i, str(class_names[i]), int(images[i]), int(correct[i])) for i in range(k)
    ]


def per_class_rows(
    class_names: Sequence[str],
    labels: np.ndarray,
    reference: tuple[str, np.ndarray],
    candidate: tuple[str, np.ndarray] | None,
) -> list[dict[str, Any]]:
    """One row per class: images, the reference's and the candidate's accuracy and the change
    (candidate - reference, in accuracy points). ``reference``/``candidate``: (id, predictions)."""
    ref_id, ref_pred = reference
    ref = per_class_accuracy(ref_pred, labels, class_names)
    cand = per_class_accuracy(candidate[1], labels, class_names) if candidate else None
    rows = []
    for i, r in enumerate(ref):
        row: dict[str, Any] = {
            "class_index": r.class_index,
            "class_name": r.class_name,
            "images": r.images,
            "reference_id": ref_id,
            "reference_accuracy": r.accuracy,
        }
        if cand is not None and candidate is not None:
            c = cand[i]
            change = None if c.accuracy is None or r.accuracy is None else c.accuracy - r.accuracy
            row.update(
                candidate_id=candidate[0], candidate_accuracy=c.accuracy, accuracy_change=change
            )
        rows.append(row)
    return rows


def per_class_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The report's section: a table, worst change first, and the classes hurt most."""
    if not rows:
        return []
    ref_id = rows[0]["reference_id"]
    cand_id = rows[0].get(C.candidate_id)
    lines = [
        "## Per-class accuracy (validation split)",
        "",
        f"Reference `{ref_id}`"
        + (f" vs recommended `{cand_id}`" if cand_id else " (no recommended candidate)")
        + "; `change` is recommended - reference, in accuracy points. Also in "
        "`per_class_accuracy.csv`.",
        "",
    ]
    header = "| class | images | reference |" + (" recommended | change |" if cand_id else "")
    lines += [header, "|---|---|---|" + ("---|---|" if cand_id else "")]

    def fmt(value: float | None) -> str:
        return "" if value is None else f"{value:.4f}"

    for row in rows:
        name = str(row["class_name"]).replace("|", "\\|")  # a '|' would split the cell
        line = f"| {name} | {row['images']} | {fmt(row['reference_accuracy'])} |"
        if cand_id:
            change = row["accuracy_change"]
            delta = "" if change is None else f"{change:+.4f}"
            line += f" {fmt(row['candidate_accuracy'])} | {delta} |"
        lines.append(line)
    hurt = [r for r in rows if cand_id and (r.get("accuracy_change") or 0) < 0]
    if hurt:
        worst = sorted(hurt, key=lambda r: r["accuracy_change"])[:3]
        lines += [
            "",
            "Hurt most: "
            + ", ".join(f"{r['class_name']} ({r['accuracy_change']:+.4f})" for r in worst)
            + ".",
        ]
    return [*lines, ""]


def per_class_for_run(
    splits: Any,
    val_loader: Any,
    baseline_accuracy: Any,
    built_models: dict[str, Any],
    recommendation: Any,
) -> list[dict[str, Any]]:
    """The run's per-class rows on the validation split: the reference ``p00-fp32-eager``
    (the trained baseline if that candidate was not built) vs the recommended candidate.

    The candidates' predictions are recomputed from the built models (``RuntimeModel.predict``,
    deterministic on the same loader) rather than carried through the sweep.
    """
    from edge_opt.candidates.plan import REFERENCE_ID
    from edge_opt.measure.metrics import evaluate_predict

    labels = splits.val.labels.numpy()
    names = splits.class_names or tuple(str(i) for i in range(splits.num_classes))
    ref_id = REFERENCE_ID
    if ref_id in built_models:
        reference = (ref_id, evaluate_predict(built_models[ref_id].predict, val_loader))
    else:
        reference = ("baseline", baseline_accuracy)
    rec_id = recommendation.candidate_id
    candidate = None
    if rec_id is not None and rec_id in built_models:
        candidate = (rec_id, evaluate_predict(built_models[rec_id].predict, val_loader))
    return per_class_rows(
        names,
        labels,
        (reference[0], reference[1].predictions.numpy()),
        None if candidate is None else (candidate[0], candidate[1].predictions.numpy()),
    )
