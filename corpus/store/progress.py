"""Progress for long work: a rich bar over Dask futures as they finish, and a listener hook.

The hook lets an orchestrator show the same progress (the Prefect flows publish it as a
progress artifact) without library code importing it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

# Called with (description, done, total) as tasks finish; set by whoever runs the step.
progress_listener: ContextVar[Callable[[str, int, int], None] | None] = ContextVar(
    "tokenmill_progress_listener", default=None
)

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)


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
    listener = progress_listener.get()
    with progress:
        bar = progress.add_task(description, total=len(pending))
        try:
            for done, future in enumerate(as_completed(pending), start=1):
                yield future.result()
                future.release()
                progress.advance(bar)
                if listener is not None:
                    listener(description, done, len(pending))
        finally:
            for future in pending:
                if not future.done():
                    future.cancel()
