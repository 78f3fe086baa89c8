"""Config: defaults everywhere, TOML file, `--set` overrides, one-line errors."""

import tomllib

import pytest

from tokenmill.corpus.store.errors import ConfigError
from tokenmill.flows.config import load_config, parse_overrides, parse_value, settings_toml


def test_defaults_need_no_file():
    config = load_config()
    assert config.store.root == "./tokenmill-data"
    assert config.load.paths == ["python-docs://"]
    assert config.pipeline.steps[0] == "load" and config.pipeline.steps[-1] == "eval"
    assert config.tokenizer.vocab_size == 8192, "the demo's embedded vocabulary"


def test_a_config_file_replaces_the_demo_settings(tmp_path):
    path = tmp_path / "tokenmill.toml"
    path.write_text('[load]\npaths = ["corpus/"]\n')
    assert load_config(path).tokenizer.vocab_size == 32_000


def test_file_then_overrides(tmp_path):
    path = tmp_path / "tokenmill.toml"
    path.write_text('[store]\nroot = "/data/store"\n[load]\npaths = ["a.jsonl"]\nchunk_mb = 8\n')
    config = load_config(path, parse_overrides(["load.chunk_mb=16", "load.text_field=content"]))
    assert config.store.root == "/data/store"
    assert config.load.paths == ["a.jsonl"]
    assert config.load.chunk_mb == 16
    assert config.load.text_field == "content"


@pytest.mark.parametrize(
    ("raw", "value"),
    [("3", 3), ("0.5", 0.5), ("true", True), ('["a", "b"]', ["a", "b"]), ('"x y"', "x y"), ("content", "content")],
)
def test_override_values_read_as_toml_or_text(raw, value):
    assert parse_value(raw) == value


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["load.chunk_size=3"], "load.chunk_size: unknown setting"),
        (["load.chunk_mb=-1"], "load.chunk_mb: Input should be greater than 0 (got -1)"),
        (["load.paths=3"], "load.paths: Input should be a valid list (got 3)"),
        (["pipeline.steps=[\"nope\"]"], "unknown step 'nope'"),
        (["nosection.key=1"], "nosection: unknown setting"),
        (["dask.memory_limit_gb=inf"], "dask.memory_limit_gb: Input should be a finite number (got inf)"),
        (["train.lr=nan"], "train.lr: Input should be a finite number (got nan)"),
        (["dask.n_workers=true"], "dask.n_workers: expected a number, not a boolean (got True)"),
        (["dedup.threshold=false"], "dedup.threshold: expected a number, not a boolean (got False)"),
    ],
)
def test_bad_settings_are_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, parse_overrides(overrides))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["load.paths"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[load\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_settings_listing_is_a_valid_config_of_the_defaults(tmp_path):
    from tokenmill.flows.config import Config, settings_toml

    path = tmp_path / "defaults.toml"
    path.write_text(settings_toml(list(Config.model_fields)))
    assert load_config(path) == load_config()
    assert "# input format; 'auto' goes by file extension\nformat = \"auto\"" in path.read_text()


def test_dedup_settings_explain_the_s_curve_and_the_recall_to_expect():
    listing = settings_toml(["dedup"])
    tomllib.loads(listing)
    assert "# LSH: 18 bands x 7 rows, tuned for J = 0.6" in listing
    assert "0.8: 0.986" in listing  # the chance a pair at the threshold becomes a candidate
    assert "Expected recall by true Jaccard: [0.80, 0.85) 0.99" in listing
