"""A progress bar for training steps that shows the latest loss, learning rate and throughput."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class StepBar:
    """A bar on a terminal; elsewhere (a Prefect or batch log) one line every `log_every` steps.
    Only rank 0 draws or prints."""

    def __init__(self, total: int, done: int, enabled: bool, log_every: int):
        self.lines = log_every if enabled and not sys.stderr.isatty() else 0
        self.total = total
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[figures]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
            disable=not (enabled and sys.stderr.isatty()),
        )
        self.task = self.progress.add_task("train", total=total, completed=done, figures="")

    def __enter__(self) -> StepBar:
        self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.progress.stop()

    def update(self, row: dict[str, Any]) -> None:
        figures = f"loss {row['loss']:.4f} lr {row['lr']:.2e} {row['tokens_per_s']:,.0f} tok/s"
        if row.get("mfu") is not None:
            figures += f" mfu {100 * row['mfu']:.1f}%"
        if row.get("val_loss") is not None:
            figures += f" val {row['val_loss']:.4f}"
        self.progress.update(self.task, advance=1, figures=figures)
        if self.lines and (row["step"] % self.lines == 0 or row["step"] == self.total):
            print(f"step {row['step']}/{self.total} {figures}", file=sys.stderr, flush=True)
