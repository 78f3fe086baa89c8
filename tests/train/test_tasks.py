"""Downstream tasks: files checked item by item and hashed, multiple choice scored as the harness
does, classification split by a hash of the text."""

from __future__ import annotations

import hashlib
import json
import random
import sysconfig
from pathlib import Path

import pytest
import torch

from tokenmill.corpus.store.errors import InputError
from tokenmill.flows.config import load_config
from tokenmill.train import builtin_tasks
from tokenmill.train.builtin_tasks import PACKAGES, PER_PACKAGE, STDLIB_PACKAGES_URL
from tokenmill.train.choice import choice_scores
from tokenmill.train.device import Runtime
from tokenmill.train.eval import TextScorer
from tokenmill.train.eval_step import run_eval
from tokenmill.train.params import EvalParams, TaskSpec
from tokenmill.train.tasks import ChoiceItem, choice_items, classification_split, read_task

CPU = Runtime(torch.device("cpu"))


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


class Uniform(torch.nn.Module):
    """Every token equally likely: a choice's log-likelihood is -ln(vocab) per token."""

    def __init__(self):
        super().__init__()
        self.cfg = type("Cfg", (), {"causal": True})()

    def forward(self, idx, targets=None):
        return torch.zeros(*idx.shape, 256), None


class Bytes:
    def encode(self, text):
        return list(text.encode())


def test_normalization_decides_between_short_and_long_choices():
    scorer = TextScorer(Uniform(), Bytes(), prefix_id=0, seq_len=64, runtime=CPU)
    items = [ChoiceItem("ctx", [" a longer one", " bé"], gold=0)]  # 13 bytes in 13 characters; 4 in 3
    assert choice_scores(scorer, items, "none")["accuracy"] == 0.0  # the sum favours the short choice
    scored = choice_scores(scorer, items, "chars")  # per character, the one with fewer bytes per character
    assert scored["accuracy"] == 1.0 and scored["chance"] == 0.5 and scored["items"] == 1


def test_task_files_are_checked_item_by_item(tmp_path):
    good = write_jsonl(tmp_path / "ok.jsonl", [{"context": "c", "choices": [" a", " b"], "gold": 1}])
    task = read_task(TaskSpec(path=str(good), kind="multiple_choice"))
    assert task.spec.name == "ok" and task.sha256 == hashlib.sha256(good.read_bytes()).hexdigest()
    bad_rows = {"line 2: not JSON": ['{"context": "c", "choices": [" a", " b"], "gold": 0}', "{oops"],
                "item 1: field 'gold' is missing": [{"context": "c", "choices": [" a", " b"]}],
                "item 1: needs two or more": [{"context": "c", "choices": [" a"], "gold": 0}],
                "item 1: field 'gold' is a str": [{"context": "c", "choices": [" a", " b"], "gold": "1"}]}
    for message, rows in bad_rows.items():
        path = write_jsonl(tmp_path / "bad.jsonl", rows)
        with pytest.raises(InputError, match=message):
            choice_items(read_task(TaskSpec(name="bad", path=str(path), kind="multiple_choice")))
    with pytest.raises(InputError, match="does not exist"):
        read_task(TaskSpec(path=str(tmp_path / "missing.jsonl")))
    with pytest.raises(ValueError, match="two tasks are named 'ok'"):
        EvalParams(tasks=[{"path": str(good)}, {"path": str(good), "kind": "multiple_choice"}])


def test_classification_split_is_by_text_whatever_the_order(tmp_path):
    rows = [{"text": f"item {i}", "label": ["x", "y", 3][i % 3]} for i in range(300)]
    splits = []
    for seed in (0, 1):
        random.Random(seed).shuffle(rows)
        split = classification_split(read_task(TaskSpec(path=str(write_jsonl(tmp_path / "c.jsonl", rows)))))
        splits.append((sorted(split.train), sorted(split.test)))
        assert split.labels == ["3", "x", "y"]
        assert 0.13 < len(split.test) / 300 < 0.27  # test_fraction 0.2
        assert not {t for t, _ in split.train} & {t for t, _ in split.test}
    assert splits[0] == splits[1]


def copy_task(sentences: list[str], n: int, seed: int) -> list[dict]:
    """The context ends with the start of a sentence it contains; one choice copies how it goes on there,
    the others are the ends of the other sentences."""
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        i = rng.randrange(4)
        words = sentences[i].split()
        cut = rng.randrange(2, len(words) - 2)
        others = [" " + " ".join(sentences[j].split()[cut:]) for j in range(4) if j != i]
        choices = [" " + " ".join(words[cut:])] + others
        order = rng.sample(range(4), 4)
        items.append({"context": f"{sentences[i]}. {' '.join(words[:cut])}",
                      "choices": [choices[k] for k in order], "gold": order.index(0)})
    return items


def test_a_tiny_causal_model_picks_the_choice_copied_from_the_context(tiny_runs, client, tmp_path, pack_sentences):
    store, runs, eval_file = tiny_runs
    run = runs["causal"]
    path = write_jsonl(tmp_path / "copy.jsonl", copy_task(pack_sentences, 40, seed=0))
    params = EvalParams(eval_texts=[str(eval_file)], cloze_min_words=5, cpu_threads=1,
                        tasks=[TaskSpec(path=str(path), kind="multiple_choice")])
    scores = run_eval(store, params, client, run_version=run).manifest.stats["tasks"]["copy"]
    assert scores["chance"] == 0.25 and scores["items"] == 40
    # 40 items at p = 0.25: chance exceeds 0.5 with probability below 0.001
    assert scores["accuracy"] > 0.5, scores
    assert scores["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_demos_task_is_which_stdlib_package_a_docstring_comes_from():
    spec = load_config().eval.tasks[0]
    assert (spec.name, spec.path, spec.kind) == ("stdlib-packages", STDLIB_PACKAGES_URL, "classification")
    assert EvalParams().tasks == []  # a config file of a real corpus gets no task it did not ask for
    task = read_task(spec)
    split = classification_split(task)
    assert len(task.rows) == PACKAGES * PER_PACKAGE and len(split.labels) == PACKAGES
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    assert all((stdlib / label / "__init__.py").is_file() for label in split.labels)
    for row in task.rows[::PER_PACKAGE]:  # one docstring of each package, found in that package's source
        first_line = row["text"].splitlines()[0]
        assert any(first_line in path.read_text(encoding="utf-8") for path in (stdlib / row["label"]).rglob("*.py"))
    with pytest.raises(InputError, match="no built-in task python-docs://tasks/nope"):
        read_task(TaskSpec(path="python-docs://tasks/nope"))


def test_a_built_in_task_is_built_once_per_python_and_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(builtin_tasks.CACHE_ENV, str(tmp_path))
    builtin_tasks.builtin_task.cache_clear()
    built = builtin_tasks.builtin_task(STDLIB_PACKAGES_URL)
    assert builtin_tasks.cache_path(STDLIB_PACKAGES_URL).read_bytes() == built
    builtin_tasks.builtin_task.cache_clear()

    def rebuild() -> bytes:
        raise AssertionError("rebuilt although cached")

    monkeypatch.setitem(builtin_tasks.BUILTIN_TASKS, STDLIB_PACKAGES_URL, rebuild)
    assert builtin_tasks.builtin_task(STDLIB_PACKAGES_URL) == built
    builtin_tasks.builtin_task.cache_clear()
