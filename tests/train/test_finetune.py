"""Fine-tuning on a classification task: macro-F1 counted by hand, a separable task learnt by
either objective's model, shuffled labels left at chance, and the fine-tuned run registered."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from tokenmill.train.device import Runtime, cpu_threads
from tokenmill.train.eval_step import run_eval
from tokenmill.train.finetune import run_finetune
from tokenmill.train.params import EvalParams, FinetuneParams, TaskSpec
from tokenmill.train.tasks import classification_scores, read_task

CPU = Runtime(torch.device("cpu"))


def test_macro_f1_is_the_mean_of_each_labels_f1():
    gold = [0, 0, 0, 0, 1, 1, 2, 2]
    predicted = [0, 0, 0, 1, 1, 0, 2, 2]
    # label 0: tp 3 fp 1 fn 1 -> 6/8; label 1: tp 1 fp 1 fn 1 -> 2/4; label 2: 4/4
    scores = classification_scores(gold, predicted)
    assert scores["accuracy"] == 6 / 8
    assert scores["macro_f1"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    majority = classification_scores(gold, [0] * 8)
    assert majority["accuracy"] == 0.5 and majority["macro_f1"] == pytest.approx((2 * 4 / (8 + 4)) / 3)


def labelled(sentences: list[str], n: int, shuffled: bool) -> list[dict]:
    """Texts of words from the first two sentences ('first') or the last two ('second'): separable by any
    word; with `shuffled`, the same texts with their labels permuted, so nothing ties a text to its label."""
    rng = random.Random(0)
    pools = [sorted(set(" ".join(sentences[:2]).split()) - set(" ".join(sentences[2:]).split())),
             sorted(set(" ".join(sentences[2:]).split()) - set(" ".join(sentences[:2]).split()))]
    rows = []
    for i in range(n):
        label = i % 2
        rows.append({"text": " ".join(rng.choice(pools[label]) for _ in range(rng.randint(4, 10))),
                     "label": ["first", "second"][label]})
    if shuffled:
        labels = [r["label"] for r in rows]
        rng.shuffle(labels)
        rows = [{**r, "label": label} for r, label in zip(rows, labels)]
    return rows


def task_file(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("objective", ["causal", "masked"])
def test_fine_tuning_learns_a_separable_task_and_not_shuffled_labels(tiny_runs, client, tmp_path, pack_sentences,
                                                                      objective):
    store, runs, eval_file = tiny_runs
    run = runs[objective]
    path = task_file(tmp_path / "halves.jsonl", labelled(pack_sentences, 300, shuffled=False))
    params = EvalParams(eval_texts=[str(eval_file)], cloze_min_words=5, cpu_threads=1,
                        tasks=[TaskSpec(path=str(path))], finetune=FinetuneParams(epochs=3, lr=1e-3))
    scored = run_eval(store, params, client, run_version=run)
    entry = scored.manifest.stats["tasks"]["halves"]
    assert entry["accuracy"] >= 0.9 and entry["macro_f1"] >= 0.9, entry
    assert entry["majority_accuracy"] < 0.65 and entry["test_items"] + entry["train_items"] == 300

    tuned = store.manifest(entry["finetune_version"])
    assert tuned.step == "finetune" and tuned.inputs == [run]
    assert scored.manifest.inputs == [run, tuned.id]
    pack, tok = store.manifest(run).inputs[:2]
    stats = tuned.stats
    assert (stats["pack_version"], stats["tokenizer_version"], stats["data_version"]) == \
        (pack, tok, store.manifest(pack).inputs[0])
    assert stats["task_sha256"] == entry["sha256"] and stats["objective"] == objective
    assert stats["pooling"] == ("last" if objective == "causal" else "mean")

    noise = task_file(tmp_path / "noise.jsonl", labelled(pack_sentences, 300, shuffled=True))
    with cpu_threads(1):
        shuffled = run_finetune(store, run, read_task(TaskSpec(path=str(noise))), params.finetune, CPU).manifest.stats
    # ~60 test items at chance 0.5: above 0.7 has probability below 0.002, and the model fits its train split
    assert shuffled["accuracy"] <= 0.7 and shuffled["macro_f1"] <= 0.7, shuffled
