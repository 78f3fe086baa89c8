"""Progress for long work: a rich bar over Dask futures as they finish."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def track(futures: Sequence[Any], description: str) -> Iterator[Any]:
    """Yield each future's result as it completes, drawing a bar on a terminal.

    Errors in a task surface here with the task's own exception, and the other futures are
    cancelled so a failed step stops at once.
    """
    from distributed import as_completed

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not sys.stderr.isatty(),
        transient=False,
    )
    pending = list(futures)
    with progress:
        bar = progress.add_task(description, total=len(pending))
        try:
            for future in as_completed(pending):
                yield future.result()
                future.release()
                progress.advance(bar)
        finally:
            for future in pending:
                if not future.done():
                    future.cancel()
