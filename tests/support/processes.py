"""Start a process, wait until it is ready, stop it.

The one way the test suite, the failure harness and the benchmarks run the
system (or a store) as a subprocess: its output goes to a log file, readiness
is a probe polled until a deadline (failing at once, with the log's tail, if
the process exits first), and a stop asks with a signal, then kills after a
grace period.

Only subprocess, time, socket and requests: no pytest, and no eventlet
monkey patching needed. It works alike in the suite's patched process and in
the benchmark's plain one (`python -m bench`).
"""
import os
import signal
import socket
import subprocess
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wait_until(check, timeout, what, interval=0.2, process=None):
    """Return once check() is true; RuntimeError naming `what` when `timeout`
    seconds pass, or at once when `process` (a LoggedProcess) exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise RuntimeError(f"{what} exited early:\n{process.log_tail()}")
        if check():
            return
        time.sleep(interval)
    tail = f":\n{process.log_tail()}" if process is not None else ""
    raise RuntimeError(f"{what} not ready within {timeout} s{tail}")


def answers_ready(base_url, timeout=2):
    """Whether the process at base_url answers 200 on /ready (every service and realtime have it)."""
    try:
        return requests.get(base_url + "/ready", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def listening(port, host="127.0.0.1"):
    """Whether something accepts TCP connections on host:port."""
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0


class LoggedProcess:
    """A subprocess whose output goes to a log file (stdout and stderr
    together, or stderr to a file of its own), or nowhere without one."""

    def __init__(self, command, log_path=None, *, name=None, env=None, cwd=ROOT, stderr_path=None,
                 append=False, new_session=False):
        self.name = name or os.path.basename(command[0])
        self.log_path = log_path
        self.stderr_path = stderr_path
        mode = "a" if append else "w"
        stdout = open(log_path, mode) if log_path else subprocess.DEVNULL
        if stderr_path:
            stderr = open(stderr_path, mode)
        else:
            stderr = subprocess.STDOUT if log_path else subprocess.DEVNULL
        self.started_at = time.monotonic()
        # new_session: its own process group, so that a signal sent to ours
        # (Ctrl-C) does not reach it and it outlives nothing it should not.
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout, stderr=stderr,
                                        start_new_session=new_session)
        for handle in (stdout, stderr):
            if hasattr(handle, "close"):
                handle.close()  # the child holds its own copy

    @property
    def pid(self):
        return self.process.pid

    @property
    def returncode(self):
        return self.process.returncode

    def alive(self):
        return self.process.poll() is None

    def wait_until_ready(self, probe, timeout=60, interval=0.2):
        """Wait until probe() is true; returns the seconds since the start."""
        wait_until(probe, timeout, self.name, interval, process=self)
        return time.monotonic() - self.started_at

    def ask_to_stop(self, signum=signal.SIGTERM):
        """Send the stop signal without waiting (to stop several at once)."""
        if self.alive():
            self.process.send_signal(signum)

    def stop(self, grace=10, signum=signal.SIGTERM):
        """Ask (SIGTERM unless told otherwise), then kill once `grace` seconds
        pass; returns the exit code, or None if it had to be killed."""
        self.ask_to_stop(signum)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        return self.process.returncode

    def kill(self):
        if self.alive():
            self.process.kill()
        self.process.wait()

    def log_tail(self, chars=4000):
        """The end of the log (stderr's own file when it has one)."""
        path = self.stderr_path or self.log_path
        if not path:
            return ""
        try:
            with open(path, errors="replace") as handle:
                return handle.read()[-chars:]
        except OSError:
            return ""


class ServedProcess(LoggedProcess):
    """`deploy/local/serve.sh` (`nameko run` of these modules, as `make run`
    and every image run them) on 127.0.0.1:port, from `root` (this checkout,
    or an export of another commit). `env` is its whole environment."""

    def __init__(self, modules, port, log_path, *, env=None, root=ROOT, **options):
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        env = dict(os.environ if env is None else env, WEB_SERVER_ADDRESS=f"127.0.0.1:{port}")
        super().__init__([os.path.join(root, "deploy", "local", "serve.sh"), *modules], log_path,
                         env=env, cwd=root, **options)

    def ready(self, timeout=2):
        return answers_ready(self.base_url, timeout)

    def wait_until_ready(self, timeout=60, interval=0.3, probe=None):
        """Until /ready answers 200 (and `probe`, if given, is true too)."""
        return super().wait_until_ready(lambda: self.ready() and (probe is None or probe()), timeout, interval)


def stop_all(processes, grace=10):
    """Signal every process first, then wait for each: they drain at once, not in turn."""
    for process in processes:
        process.ask_to_stop()
    for process in processes:
        process.stop(grace)
