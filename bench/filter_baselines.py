"""datatrove's four heuristic filters, as `bench_filter.py --compare` runs them beside `tokenmill run filter`.

    .venv-datatrove/bin/python bench/filter_baselines.py run INPUT_DIR OUTPUT_DIR [--workers 2]
    .venv-datatrove/bin/python bench/filter_baselines.py decide SAMPLE.jsonl DECISIONS.json

`run`: GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter and FineWebQualityFilter with their
defaults, in FineWeb's order, one pipeline over the JSONL files of INPUT_DIR on a LocalPipelineExecutor
of `--workers` tasks and as many processes. `decide`: each filter alone on every doc of SAMPLE, its
keep (true) or drop per doc, for the agreement table. datatrove runs in a virtual environment of its
own, for the bench only, never a tokenmill dependency (its English word tokenizer is spaCy's blank
"en", which needs no download):

    python -m venv .venv-datatrove && .venv-datatrove/bin/pip install datatrove==0.10.1 spacy regex orjson
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def filters() -> dict:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return {"gopher_repetition": GopherRepetitionFilter(), "gopher_quality": GopherQualityFilter(),
            "c4": C4QualityFilter(), "fineweb": FineWebQualityFilter()}


def run(input_dir: Path, output_dir: Path, workers: int) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    pipeline = [JsonlReader(str(input_dir)), *filters().values(), JsonlWriter(str(output_dir / "kept"))]
    LocalPipelineExecutor(pipeline=pipeline, tasks=workers, workers=workers,
                          logging_dir=str(output_dir / "logs")).run()


def decide(sample: Path, output: Path) -> None:
    from datatrove.data import Document

    texts = [json.loads(line)["text"] for line in sample.open(encoding="utf-8")]
    decisions = {}
    for name, step in filters().items():
        kept = []
        for i, text in enumerate(texts):
            result = step.filter(Document(text=text, id=str(i)))
            kept.append(bool(result[0] if isinstance(result, tuple) else result))
        decisions[name] = kept
    output.write_text(json.dumps(decisions))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_command = commands.add_parser("run")
    run_command.add_argument("input_dir", type=Path)
    run_command.add_argument("output_dir", type=Path)
    run_command.add_argument("--workers", type=int, default=2)
    decide_command = commands.add_parser("decide")
    decide_command.add_argument("sample", type=Path)
    decide_command.add_argument("output", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.input_dir, args.output_dir, args.workers)
    else:
        decide(args.sample, args.output)
