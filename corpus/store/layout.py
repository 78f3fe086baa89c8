"""Names and places in the store (DESIGN §2): what a version id is, and the folder each thing lives in.

Every path the store builds from a version id goes through `step_of`, so an id is checked
once, here, whichever way it came in (CLI, flow parameter, config, a manifest's inputs): a
`..` or `/` in an id could otherwise point a reader or a writer outside the store.
"""

from __future__ import annotations

import re

from tokenmill.corpus.store.errors import InputError

# Every step that commits versions: the pipeline's steps (flows/steps.py), the filter's
# signals (corpus/filter/signals.py) and the fine-tuned runs the eval step makes (train/finetune.py).
# tests/corpus/store/test_ids.py keeps the lists in step.
KNOWN_STEPS = ("crawl", "load", "clean", "dedup", "filter", "signals", "tokenizer", "pack", "train", "eval",
               "finetune")
# Hex digits of the sha256 of a version's identity that its id keeps (`version_id`).
ID_HEX = 12
ID_PATTERN = re.compile(rf"(?P<step>{'|'.join(KNOWN_STEPS)})-[0-9a-f]{{{ID_HEX}}}")

MANIFEST = "_manifest.json"
STAGING = ".staging"
TRASH = ".trash"
LOCKS = ".locks"
ATTEMPTS = "attempts"
# Steps whose versions live in a folder not named after the step: training runs go to `runs/` (DESIGN §4).
STEP_FOLDERS = {"train": "runs"}


def is_version_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


def step_of(vid: str, what: str = "") -> str:
    """The step of a version id, or one-line InputError (prefixed with `what`, the setting or argument
    it came from) for anything else."""
    match = ID_PATTERN.fullmatch(vid) if isinstance(vid, str) else None
    if match is None:
        where = f"{what}: " if what else ""
        raise InputError(f"{where}{vid!r} is not a version id (expected <step>-<{ID_HEX} hex digits>, "
                         f"step one of {', '.join(KNOWN_STEPS)})")
    return match["step"]


def check_step(step: str, what: str = "step") -> str:
    """`step` if it is a known step (it becomes a folder name), else a one-line InputError."""
    if step not in KNOWN_STEPS:
        raise InputError(f"{what}: unknown step {step!r}; known steps: {', '.join(KNOWN_STEPS)}")
    return step


def folder_of(step: str) -> str:
    """The folder under the root that holds a step's versions."""
    return STEP_FOLDERS.get(check_step(step), step)


def step_folders() -> list[str]:
    """The folder of every known step, each once."""
    return list(dict.fromkeys(folder_of(step) for step in KNOWN_STEPS))
