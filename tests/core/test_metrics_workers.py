"""`make serve` with two workers: each counts in its own file, a scrape of either adds them up."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_CHAIN_KEY, TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]
ROUTE = "/health/live"
ROUND = 16
"""Requests sent at once per round, each on a connection of its own."""
MAX_ROUNDS = 20
START_WAIT_S = 60.0


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`python -m app.cli serve` with two workers and metrics on; its URL and metrics dir."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    # A file left by an earlier run: it must not add to this run's counts.
    (directory / "counter_1.db").write_bytes(b"left over from an earlier run")
    port = free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if key != "ENVIRONMENT" and "__" not in key and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    environment |= {
        "ENVIRONMENT": "test",
        "DATABASE__URL": database_url,
        "SECURITY__JWT_SECRET": TEST_SECRET,
        "AUDIT__CHAIN_KEY": TEST_CHAIN_KEY,
        "SERVER__PORT": str(port),
        "SERVER__WORKERS": "2",
        "METRICS__ENABLED": "true",
        "METRICS__ALLOWED_CLIENTS": '["127.0.0.1"]',
        "METRICS__MULTIPROC_DIR": str(directory),
        "LOG__LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        cwd=ROOT,
        env=environment,
        start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", directory
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_until_up(url: str) -> None:
    """Poll the liveness probe until the server answers (not counted: before the test's)."""
    deadline = asyncio.get_running_loop().time() + START_WAIT_S
    async with httpx.AsyncClient(base_url=url) as client:
        while True:
            try:
                if (await client.get("/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert asyncio.get_running_loop().time() < deadline, "the server did not start"
            await asyncio.sleep(0.2)


def live_count(registry: CollectorRegistry) -> float:
    """Successful liveness requests counted in a registry."""
    total = 0.0
    for family in registry.collect():
        for metric in family.samples:
            if (
                metric.name == "roombook_http_requests_total"
                and metric.labels.get("route") == ROUTE
                and metric.labels.get("status_class") == "2xx"
            ):
                total += metric.value
    return total


def counts_per_worker(directory: Path, scratch: Path) -> dict[str, float]:
    """Each worker's own count, read from its file alone."""
    counts: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        alone = scratch / path.stem
        alone.mkdir(parents=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        counts[path.stem] = live_count(registry)
    return counts


async def send_round(url: str) -> None:
    """ROUND liveness requests at once, each on a new connection, so both workers take some."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:
        answers = await asyncio.gather(*(client.get(ROUTE) for _ in range(ROUND)))
    assert all(answer.status_code == 200 for answer in answers)


async def test_two_workers_counts_add_up_in_one_scrape(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    url, directory = served
    await wait_until_up(url)
    assert not (directory / "counter_1.db").exists(), "the directory was not emptied at start"
    sent = 0
    for _ in range(MAX_ROUNDS):
        await send_round(url)
        sent += ROUND
        per_worker = counts_per_worker(directory, tmp_path / f"scratch-{sent}")
        if sum(1 for count in per_worker.values() if count > 0) >= 2:
            break
    assert sum(1 for count in per_worker.values() if count > 0) == 2, per_worker

    async with httpx.AsyncClient(base_url=url) as client:
        scraped = (await client.get("/metrics")).text
    total = sum(
        metric.value
        for family in text_string_to_metric_families(scraped)
        for metric in family.samples
        if metric.name == "roombook_http_requests_total"
        and metric.labels.get("route") == ROUTE
        and metric.labels.get("status_class") == "2xx"
    )
    assert total == sent == sum(per_worker.values())
