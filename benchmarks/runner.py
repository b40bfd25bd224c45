"""Processes of the HTTP benchmark: pinned servers, wrk runs, and their /proc counters."""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.measure import (
    WrkRun,
    cpu_us_per_request,
    parse_stat_ticks,
    parse_vm_kib,
    parse_wrk_report,
)

ROOT = Path(__file__).resolve().parent.parent
WRK_DIR = ROOT / "benchmarks" / "wrk"
READY_TIMEOUT_S = 60.0
IDLE_SHARE = 0.05
"""A server using less than this share of a core is taken as idle."""
DRAIN_LIMIT_S = 180.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Pinning:
    """taskset prefixes putting the server on one core and the load generator on another."""

    server: tuple[str, ...]
    load: tuple[str, ...]

    @classmethod
    def detect(cls) -> "Pinning":
        """Pin when taskset exists and two cores are ours; otherwise let the OS schedule."""
        taskset = shutil.which("taskset")
        cores = sorted(os.sched_getaffinity(0))
        if taskset is None or len(cores) < 2:
            return cls(server=(), load=())
        return cls(server=(taskset, "-c", str(cores[0])), load=(taskset, "-c", str(cores[1])))

    def describe(self) -> str:
        """One phrase for the report."""
        if not self.server:
            return "not pinned (no taskset or a single core)"
        return f"server pinned to CPU {self.server[-1]}, wrk to CPU {self.load[-1]}"


def ensure_wrk() -> str:
    """The wrk binary; installed from the OS packages when missing and possible."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise SystemExit(
            "bench-http needs wrk and cannot install it here (needs root and apt-get): "
            "install it with your package manager (apt-get install wrk, brew install wrk)"
        )
    sys.stdout.write("wrk is missing: apt-get install -y wrk\n")
    for command in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "wrk"]):
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 - fixed argv
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("apt-get did not install wrk; install it by hand")
    return found


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    found = [pid]
    for parent in found:
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                found.extend(int(child) for child in (task / "children").read_text().split())
            except FileNotFoundError:
                continue
    return found


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process tree, in clock ticks."""
    total = 0
    for member in process_tree(pid):
        try:
            total += parse_stat_ticks(Path(f"/proc/{member}/stat").read_text())
        except FileNotFoundError:
            continue
    return total


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of one process in MB: now (VmRSS) or at its peak (VmHWM)."""
    return parse_vm_kib(Path(f"/proc/{pid}/status").read_text(), field) / 1024


def wait_idle(pid: int, *, interval_s: float = 0.5) -> float:
    """Wait until the server has worked off what earlier runs left queued; return seconds.

    wrk stops sending at the end of a run, but the server still finishes every request it
    accepted (a queue of logins can take many seconds); the next run must not pay for it.
    """
    started = time.monotonic()
    previous = cpu_ticks(pid)
    while (waited := time.monotonic() - started) < DRAIN_LIMIT_S:
        time.sleep(interval_s)
        current = cpu_ticks(pid)
        if (current - previous) / CLOCK_TICKS <= interval_s * IDLE_SHARE:
            return waited
        previous = current
    raise SystemExit(f"the server was still busy {DRAIN_LIMIT_S:.0f} s after a run: a stall?")


@dataclass(frozen=True, slots=True)
class Server:
    """A started server: its process and base URL."""

    process: "subprocess.Popen[bytes]"
    base_url: str

    @property
    def pid(self) -> int:
        """The server's process id (taskset execs, so it is the Python process itself)."""
        return self.process.pid


@contextmanager
def serving(
    module: Sequence[str], *, env: dict[str, str], ready_path: str, pin: Pinning, log_path: Path
) -> Iterator[Server]:
    """Start `python -m <module>` on the server core, wait until ready, stop it afterwards."""
    base_url = f"http://{env['SERVER__HOST']}:{env['SERVER__PORT']}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [*pin.server, sys.executable, "-m", *module],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(process, base_url + ready_path, log_path)
            yield Server(process=process, base_url=base_url)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(process: "subprocess.Popen[bytes]", url: str, log_path: Path) -> None:
    """Poll `url` until it answers 200; fail with the log's tail if the server dies."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise SystemExit(f"the server exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server was not ready after {READY_TIMEOUT_S:.0f} s (see {log_path})")


@dataclass(frozen=True, slots=True)
class Load:
    """What wrk sends: a script of `benchmarks/wrk/` and its arguments."""

    script: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Wrk:
    """How every wrk run is started: one thread on the load core."""

    binary: str
    pin: Pinning
    timeout_s: int

    def start(
        self, server: Server, *, load: Load, connections: int, seconds: int
    ) -> "subprocess.Popen[str]":
        """Start one run in the background."""
        command = [
            *self.pin.load,
            self.binary,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            f"--timeout={self.timeout_s}s",
            "-s",
            str(WRK_DIR / load.script),
            server.base_url,
            "--",
            *load.args,
        ]
        env = {**os.environ, "LUA_PATH": f"{WRK_DIR}/?.lua;;"}
        return subprocess.Popen(  # noqa: S603 - wrk with our scripts
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def finish(self, process: "subprocess.Popen[str]") -> WrkRun:
        """Wait for a run and read its report."""
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"wrk failed ({process.returncode}): {stderr.strip()}")
        return parse_wrk_report(stdout)

    def run(self, server: Server, *, load: Load, connections: int, seconds: int) -> WrkRun:
        """Run once and wait for it."""
        return self.finish(self.start(server, load=load, connections=connections, seconds=seconds))

    def measure(
        self, server: Server, *, load: Load, connections: int, seconds: int
    ) -> tuple[WrkRun, float]:
        """Start from an idle server, run once; return the run and CPU µs per completed request.

        The CPU time counted is the server's during the run, not the queue it works off after.
        """
        wait_idle(server.pid)
        before = cpu_ticks(server.pid)
        run = self.run(server, load=load, connections=connections, seconds=seconds)
        ticks = cpu_ticks(server.pid) - before
        cpu = cpu_us_per_request(ticks=ticks, clock_ticks_per_s=CLOCK_TICKS, requests=run.requests)
        return run, cpu
