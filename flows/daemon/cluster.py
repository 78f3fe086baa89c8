"""The daemon's Dask cluster, in a process of its own: `python -m tokenmill.flows.daemon.cluster SETTINGS`.

A LocalCluster runs its scheduler on threads of the process that starts it, and the daemon forks
every run from its own process, which must have no threads to fork safely; so the cluster lives
here. It is the LocalCluster a run would start for the same `[dask]` settings, its workers given
every step's code to import at once, and it says its address as one JSON line on stdout, then
stays up until its stdin closes.
"""

from __future__ import annotations

import json
import sys

from tokenmill.corpus.store.runtime import DaskSettings, import_modules, open_local_cluster, quiet_routine_shuffle_logs
from tokenmill.flows.steps import STEPS


def hold(settings: DaskSettings) -> None:
    quiet_routine_shuffle_logs()
    client, cluster = open_local_cluster(settings)
    modules = sorted({spec.module for spec in STEPS.values()})
    client.run(import_modules, modules, wait=False)
    print(json.dumps({"address": cluster.scheduler_address, "dashboard": client.dashboard_link}), flush=True)
    try:
        sys.stdin.read()
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    hold(DaskSettings.model_validate_json(sys.argv[1]))
