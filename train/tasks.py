"""Downstream tasks as data: a JSONL file read once, checked item by item, hashed, and split.

The sha256 of the file's bytes goes with every score computed on it, so scores on two different
files of one task name are never put side by side as if comparable. A classification task is
split by a hash of each item's text, so the split does not depend on the file's order, and an
item repeated in the file lands on one side only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fsspec

from tokenmill.corpus.store.errors import InputError
from tokenmill.train.builtin_tasks import BUILTIN_TASKS, builtin_task
from tokenmill.train.params import TaskSpec

SPLIT_SALT = b"tokenmill-task-split\0"
BUILTIN_PREFIX = "python-docs://tasks/"


@dataclass(frozen=True)
class TaskData:
    spec: TaskSpec
    rows: list[dict[str, Any]]
    sha256: str


@dataclass(frozen=True)
class ChoiceItem:
    context: str
    choices: list[str]
    gold: int


@dataclass(frozen=True)
class Split:
    """The train and test items of a classification task as (text, label index), and the label names."""

    train: list[tuple[str, int]]
    test: list[tuple[str, int]]
    labels: list[str]


def task_bytes(path: str) -> bytes:
    """The task file's bytes: a built-in task (python-docs://tasks/…) or any path or fsspec URL."""
    if path.startswith(BUILTIN_PREFIX):
        if path not in BUILTIN_TASKS:
            raise InputError(f"eval.tasks: no built-in task {path}; built in: {', '.join(BUILTIN_TASKS)}")
        return builtin_task(path)
    try:
        with fsspec.open(path, "rb", compression="infer") as f:
            return f.read()
    except FileNotFoundError:
        raise InputError(f"eval.tasks: {path} does not exist") from None


def read_task(spec: TaskSpec, data: bytes | None = None) -> TaskData:
    """The task's items (each a JSON object) and the sha256 of its bytes; a line that is not a JSON
    object is one error naming the task and the line."""
    import orjson

    data = task_bytes(spec.path) if data is None else data
    rows = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise InputError(f"task {spec.name} ({spec.path}) line {number}: not JSON") from None
        if not isinstance(row, dict):
            raise InputError(f"task {spec.name} ({spec.path}) line {number}: not a JSON object")
        rows.append(row)
    if not rows:
        raise InputError(f"task {spec.name} ({spec.path}): no items")
    return TaskData(spec, rows, hashlib.sha256(data).hexdigest())


def field(task: TaskData, number: int, row: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = row.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"task {task.spec.name} ({task.spec.path}) item {number}: field {name!r} is "
                         f"{'missing' if value is None else f'a {type(value).__name__}'}")
    return value


def choice_items(task: TaskData) -> list[ChoiceItem]:
    """Multiple choice items: a context, two or more choices, and the index of the right one."""
    spec, items = task.spec, []
    for number, row in enumerate(task.rows, start=1):
        context = field(task, number, row, spec.context_field, str)
        choices = field(task, number, row, spec.choices_field, list)
        gold = field(task, number, row, spec.gold_field, int)
        if len(choices) < 2 or not all(isinstance(c, str) and c for c in choices) or not 0 <= gold < len(choices):
            raise InputError(f"task {spec.name} ({spec.path}) item {number}: needs two or more non-empty text "
                             f"choices and a gold index among them")
        items.append(ChoiceItem(context, choices, gold))
    return items


def in_test(text: str, test_fraction: float) -> bool:
    """Whether an item is in the test split: the first 8 bytes of a salted sha256 of its text, as a unit."""
    digest = hashlib.sha256(SPLIT_SALT + text.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


def classification_split(task: TaskData) -> Split:
    """The items split by text hash, labels (strings or integers, as given) numbered in sorted order."""
    spec = task.spec
    pairs = [(field(task, n, row, spec.text_field, str), str(field(task, n, row, spec.label_field, (str, int))))
             for n, row in enumerate(task.rows, start=1)]
    labels = sorted({label for _, label in pairs})
    index = {label: i for i, label in enumerate(labels)}
    train, test = [], []
    for text, label in pairs:
        (test if in_test(text, spec.test_fraction) else train).append((text, index[label]))
    if len(labels) < 2 or not train or not test:
        raise InputError(f"task {spec.name} ({spec.path}): {len(pairs)} items, {len(labels)} labels, "
                         f"{len(train)} train and {len(test)} test; fine-tuning needs two labels and both splits")
    return Split(train, test, labels)


def classification_scores(gold: Sequence[int], predicted: Sequence[int]) -> dict[str, float]:
    """Accuracy and macro-F1: the unweighted mean of each label's F1 over the labels that occur in
    either the gold answers or the predictions (as scikit-learn's `f1_score(average="macro")`), so a
    model that always answers the majority label scores well below its accuracy."""
    labels = sorted(set(gold) | set(predicted))
    f1s = []
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, predicted))
        fp = sum(p == label != g for g, p in zip(gold, predicted))
        fn = sum(g == label != p for g, p in zip(gold, predicted))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {"accuracy": sum(g == p for g, p in zip(gold, predicted)) / len(gold), "macro_f1": sum(f1s) / len(f1s)}


def majority_scores(split: Split) -> dict[str, float]:
    """The scores of always answering the train split's most frequent label: the floor a model must clear."""
    train_labels = [label for _, label in split.train]
    majority = max(set(train_labels), key=train_labels.count)
    scores = classification_scores([label for _, label in split.test], [majority] * len(split.test))
    return {"majority_accuracy": scores["accuracy"], "majority_macro_f1": scores["macro_f1"]}
