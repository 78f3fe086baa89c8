"""The early Prefect API of `tokenmill run`: started only where Prefect would start one, used by
the flow runs in its block, and stopped after their logs are sent."""

from __future__ import annotations

import pytest

from tokenmill.flows.api import EarlyAPI


def test_a_running_api_is_used_and_nothing_starts(prefect_api):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # This process's Prefect settings may predate the fixture's environment: state the API as a profile would.
    with temporary_settings(updates={PREFECT_API_URL: prefect_api}), EarlyAPI() as api:
        assert api.process is None
        with api.serving():
            assert api.process is None
            assert PREFECT_API_URL.value() == prefect_api


@pytest.mark.slow
def test_without_an_api_url_a_flow_runs_against_the_early_server_which_then_stops(monkeypatch, tmp_path):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    monkeypatch.delenv("PREFECT_API_URL")  # as a fresh `tokenmill run` sees it: no API anywhere
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))

    @flow(name="early-api-probe")
    def probe() -> int:
        return 7

    with temporary_settings(updates={PREFECT_HOME: tmp_path / "prefect"}, restore_defaults={PREFECT_API_URL}), \
            EarlyAPI() as api:
        process = api.process
        assert process is not None and process.poll() is None
        with api.serving():
            assert PREFECT_API_URL.value() == api.url
            assert probe() == 7
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs()
            assert len(runs) == 1 and runs[0].state_type.value == "COMPLETED"  # its own database
    assert process.poll() is not None
    assert api.process is None
