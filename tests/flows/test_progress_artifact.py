"""The flows' progress artifact: percent as it grows, and live rates without flooding Prefect's API."""

from __future__ import annotations

import pytest

from tokenmill.flows import common


def sent_to_prefect(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, str | None]]:
    """What the artifact sends, as (call, progress, description)."""
    sent: list[tuple[str, float, str | None]] = []

    def create(progress: float, key: str, description: str | None) -> str:
        sent.append(("create", progress, description))
        return "artifact-id"

    def update(artifact_id: str, progress: float, description: str | None = None) -> None:
        sent.append(("update", progress, description))

    monkeypatch.setattr(common, "create_progress_artifact", create)
    monkeypatch.setattr(common, "update_progress_artifact", update)
    return sent


def test_percent_and_new_rates_are_sent_at_most_so_often(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = sent_to_prefect(monkeypatch)
    clock = [100.0]
    artifact = common.ProgressArtifact("crawl", clock=lambda: clock[0])

    def report(description: str, done: int, seconds: float = 1.0) -> None:
        clock[0] += seconds
        artifact(description, done, 100)

    report("crawl: 9 fetched/s", 10)
    report("crawl: 9 fetched/s", 10)  # nothing new
    report("crawl: 8 fetched/s", 10)  # new rates, too soon
    report("crawl: 7 fetched/s", 10, seconds=5.0)  # new rates, 5 s on
    report("crawl: 7 fetched/s", 11)  # one percent more
    report("crawl: 6 fetched/s", 100)  # the end, at once
    report("crawl: 8 fetched/s over the crawl", 100)
    assert sent == [("create", 10, "crawl: 9 fetched/s"), ("update", 10, "crawl: 7 fetched/s"),
                    ("update", 11, "crawl: 7 fetched/s"), ("update", 100, "crawl: 6 fetched/s"),
                    ("update", 100, "crawl: 8 fetched/s over the crawl")]


def test_a_constant_description_updates_once_per_percent(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = sent_to_prefect(monkeypatch)
    artifact = common.ProgressArtifact("dedup")
    for done in range(1, 401):
        artifact("dedup: sign", done, 400)
    assert [progress for _, progress, _ in sent] == list(range(0, 101))
