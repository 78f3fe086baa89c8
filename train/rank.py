"""One torchrun rank of the train step: `python -m tokenmill.train.rank SPEC` (started by `launch`)."""

from __future__ import annotations

import ctypes
import signal
import sys
from pathlib import Path

from tokenmill.corpus.store.errors import TokenmillError
from tokenmill.corpus.store.versions import Store
from tokenmill.train.launch import RankSpec
from tokenmill.train.loop import run_train

PR_SET_PDEATHSIG = 1


def die_with_agent() -> None:
    """torchrun starts each rank in its own session, so a launcher killed outright (OOM killer, SIGKILL,
    a lost node) would leave its ranks training on, holding GPUs and racing the rerun. On Linux the
    kernel kills this rank when its torchrun agent dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main(spec_path: str) -> None:
    die_with_agent()
    spec = RankSpec.model_validate_json(Path(spec_path).read_text())
    run_train(Store.from_settings(spec.store), spec.params, None, force=spec.force,
              input_version=spec.input_version, tokenizer_version=spec.tokenizer_version)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except TokenmillError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
