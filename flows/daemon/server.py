"""The tokenmill daemon: every `tokenmill` command started warm, on a Prefect server and Dask cluster
that stay up between commands.

A command's fixed cost here is seconds: importing Prefect and the step flows (~4.5 s on 2 cores),
booting a temporary Prefect server, spawning Dask workers that then import the step's code, and
closing them all again. The daemon pays that once: it imports everything, keeps a Prefect server
(unless one is configured) and a LocalCluster process (`cluster.py`), and for each command forks
a process of its own, which takes the caller's descriptors, folder, environment and arguments
and runs the command as `tokenmill` would. Its loop is one thread (forking from a process with
threads of its own is unsafe), over the listening socket and one connection per running command.

A caller whose Prefect or Dask settings differ from the daemon's, from another Python, or after
tokenmill's code changed on disk (the daemon then stops) is refused and runs in its own process.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenmill.corpus.store.runtime import DAEMON_CLUSTER_ENV, DaskSettings
from tokenmill.flows.daemon import wire
from tokenmill.flows.env import PREFECT_DEFAULTS, configure_prefect_env

# Settings read per run (the flow run's Prefect API, the scheduler a run names), not at import.
RUN_TIME_SETTINGS = ("PREFECT_API_URL", "PREFECT_API_KEY", "DASK_SCHEDULER_ADDRESS")
POLL_S = 0.1


@dataclass
class Run:
    """A command running in a forked process, and the connection its caller waits on."""

    pid: int
    sock: socket.socket
    argv: list[str]


@dataclass
class Daemon:
    """The loop's state: what a forked run is given, and what is running."""

    path: Path
    settings: dict[str, str]
    provided: dict[str, str]
    info: dict[str, Any]
    sources: dict[str, int]
    runs: dict[int, Run] = field(default_factory=dict)
    served: int = 0
    stopping: str = ""
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)

    def serve(self, listener: socket.socket) -> None:
        """Answer connections on `listener` until asked to stop and no run is left."""
        self.selector.register(listener, selectors.EVENT_READ)
        signal.signal(signal.SIGTERM, lambda *_: self.stop("SIGTERM"))
        signal.signal(signal.SIGINT, lambda *_: self.stop("SIGINT"))
        try:
            while not (self.stopping and not self.runs):
                for key, _ in self.selector.select(POLL_S):
                    if key.fileobj is listener:
                        self.accept(listener)
                    else:
                        self.hung_up(key.data)
                self.reap()
        finally:
            listener.close()  # callers now find no daemon and run in their own processes
            for run in self.runs.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.pid, signal.SIGTERM)

    def stop(self, why: str) -> None:
        if not self.stopping:
            self.stopping = why
            print(f"tokenmill daemon: stopping ({why})", file=sys.stderr, flush=True)

    def accept(self, listener: socket.socket) -> None:
        sock, _ = listener.accept()
        sock.settimeout(5.0)
        try:
            message, fds = wire.Reader(sock).next()
        except OSError:
            sock.close()
            return
        try:
            if message is not None:
                self.answer(message, sock, fds)
        except OSError:  # the caller went away mid-answer: its business, not the daemon's
            sock.close()
        finally:
            for fd in fds:
                os.close(fd)

    def answer(self, message: dict[str, Any], sock: socket.socket, fds: list[int]) -> None:
        op = message.get("op")
        if op == "run":
            refusal = self.refusal(message, fds)
            if refusal is not None:
                wire.send(sock, {"refused": refusal[0], "note": refusal[1]})
                sock.close()
                return
            run = self.fork(message, sock, fds)
            self.runs[run.pid] = run
            self.served += 1
            try:
                wire.send(sock, {"pid": run.pid})
            except OSError:  # the caller is gone already, and with it the point of its run
                self.hung_up(run)
                return
            self.selector.register(sock, selectors.EVENT_READ, run)
            return
        if op == "stop":
            self.stop("asked")
        wire.send(sock, {**self.info, "pid": os.getpid(), "served": self.served, "stopping": self.stopping,
                         "running": [{"pid": r.pid, "argv": r.argv} for r in self.runs.values()]})
        sock.close()

    def refusal(self, message: dict[str, Any], fds: list[int]) -> tuple[str, str] | None:
        """Why this request runs in its caller's process instead, and what to tell the caller (may be '')."""
        if self.stopping:
            return "stopping", ""
        if len(fds) != 3:
            return "descriptors", ""
        if message.get("executable") != sys.executable:
            return "python", f"it runs {sys.executable}; this command runs in its own process"
        theirs = import_time({**PREFECT_DEFAULTS, **message.get("env", {})})
        if theirs != self.settings:
            differing = sorted(k for k in theirs.keys() | self.settings.keys() if theirs.get(k) != self.settings.get(k))
            return "settings", f"{', '.join(differing)} differ from the daemon's; this command runs in its own process"
        changed = changed_sources(self.sources)
        if changed:
            self.stop(f"{changed} changed since it started")
            return "stale", f"{changed} changed since the daemon started; it stops (`tokenmill daemon start` again)"
        return None

    def fork(self, message: dict[str, Any], sock: socket.socket, fds: list[int]) -> Run:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            for key in list(self.selector.get_map().values()):  # the listener and the other callers
                key.fileobj.close()  # type: ignore[union-attr]
            sock.close()
            run_forked(message, fds, self.provided)  # never returns
        with contextlib.suppress(PermissionError, ProcessLookupError):
            os.setpgid(pid, pid)  # also done by the child: whichever runs first, signals find the group
        return Run(pid, sock, list(message.get("argv", [])))

    def hung_up(self, run: Run) -> None:
        """The caller hung up (its connection became readable: it sends nothing more), so the run stops."""
        if run.sock.fileno() in self.selector.get_map():
            self.selector.unregister(run.sock)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGTERM)

    def reap(self) -> None:
        for pid, run in list(self.runs.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                continue
            del self.runs[pid]
            if run.sock.fileno() in self.selector.get_map():
                self.selector.unregister(run.sock)
            code = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(OSError):
                wire.send(run.sock, {"exit": code if code >= 0 else 128 - code})  # a signal as shells say it
            run.sock.close()


def run_forked(message: dict[str, Any], fds: list[int], provided: dict[str, str]) -> None:
    """In the forked process: become the caller's command, then exit with its code."""
    code = 1
    try:
        os.setpgid(0, 0)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")
        os.chdir(message["cwd"])
        os.environ.clear()
        os.environ.update(message["env"])
        for key, value in provided.items():
            os.environ.setdefault(key, value)
        code = run_command(message["argv"])
    except KeyboardInterrupt:  # as Python ends a process that Ctrl-C interrupted
        traceback.print_exc()
        code = 128 + signal.SIGINT
    except BaseException:  # a command's own errors end in its exit code; this one is the daemon's
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            threading._shutdown()  # type: ignore[attr-defined]  # what interpreter exit does: wait for threads,
            atexit._run_exitfuncs()  # then exit hooks (Prefect sends its queued logs and events)
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def run_command(argv: list[str]) -> int:
    """`tokenmill ARGV` in this process; its exit code."""
    from prefect.context import refresh_global_settings_context

    from tokenmill.flows import cli

    refresh_global_settings_context()  # Prefect read its settings at import, from the daemon's environment
    cli.fresh_consoles()
    sys.argv = ["tokenmill", *argv]
    try:
        cli.main()
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            return done.code or 0
        print(done.code, file=sys.stderr)
        return 1
    return 0


def import_time(environ: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in wire.import_time_settings(environ).items() if k not in RUN_TIME_SETTINGS}


def tokenmill_sources() -> dict[str, int]:
    """Modification times of tokenmill's loaded modules: the code every run will use."""
    sources = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.startswith("tokenmill.") and path:
            sources[path] = os.stat(path).st_mtime_ns
    return sources


def changed_sources(sources: dict[str, int]) -> str | None:
    for path, mtime in sources.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                return path
        except FileNotFoundError:
            return path
    return None


def bind(path: Path) -> socket.socket:
    """Listen at `path`, only this user may connect; a socket left by a daemon that died is replaced."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if wire.request({"op": "status"}, path) is not None:
        raise SystemExit(f"a tokenmill daemon already answers at {path}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    listener.listen(64)
    listener.setblocking(False)
    return listener


def preload() -> None:
    """Import what any command runs: the CLI, Prefect, the pipeline and every step's code."""
    import importlib

    import tokenmill.flows.cli  # noqa: F401
    import tokenmill.flows.pipeline  # noqa: F401
    from tokenmill.flows.steps import STEPS

    for spec in STEPS.values():
        importlib.import_module(spec.module)


def start_cluster(settings: DaskSettings) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tokenmill.flows.daemon.cluster", settings.model_dump_json()]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def cluster_said(process: subprocess.Popen[str]) -> dict[str, str]:
    """What the cluster process says once up: its scheduler's address and dashboard."""
    line = process.stdout.readline()  # type: ignore[union-attr]
    if not line:
        process.wait()
        raise SystemExit(f"the daemon's Dask cluster did not start (exit code {process.returncode})")
    return json.loads(line)


def stop_cluster(process: subprocess.Popen[str]) -> None:
    """Close the cluster process's stdin, its signal to stop, and wait for it."""
    process.stdin.close()  # type: ignore[union-attr]
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(path: Path, dask: DaskSettings) -> None:
    """Start the Dask cluster and Prefect server while preloading, then serve until stopped."""
    from tokenmill.flows.api import EarlyAPI

    configure_prefect_env()
    settings = import_time(dict(os.environ))
    started = time.monotonic()
    cluster = start_cluster(dask)
    listener = None
    try:
        with EarlyAPI() as api:
            preload()
            from prefect.settings import PREFECT_API_URL

            said = cluster_said(cluster)
            provided = {DAEMON_CLUSTER_ENV: json.dumps({"address": said["address"], "settings": dask.model_dump()})}
            if PREFECT_API_URL.value() is not None:  # the user's server (the active profile's), not ours
                api.stop()
            elif api.process is not None:
                api.wait_until_answering()
                provided["PREFECT_API_URL"] = api.url
            info = {"prefect_api": provided.get("PREFECT_API_URL") or PREFECT_API_URL.value(),
                    "dask": dask.model_dump(), "dask_dashboard": said["dashboard"],
                    "started_in_s": round(time.monotonic() - started, 1), "started_at": time.time()}
            listener = bind(path)
            print(f"tokenmill daemon: ready at {path} {json.dumps(info)}", file=sys.stderr, flush=True)
            Daemon(path, settings, provided, info, tokenmill_sources()).serve(listener)
    finally:  # the Prefect server stopped on leaving its block; the cluster now, then the socket
        stop_cluster(cluster)
        if listener is not None:  # ours, not one another daemon answers at
            path.unlink(missing_ok=True)  # the last thing: `tokenmill daemon stop` waits for it


if __name__ == "__main__":
    main(Path(sys.argv[1]), DaskSettings.model_validate_json(sys.argv[2]))
