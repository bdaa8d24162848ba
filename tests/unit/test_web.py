"""The HTTP tier: uvicorn serving /healthz, /metrics (parsed with prometheus_client's own parser) and contributed
routes; the bind address is honoured; ``blendwise run --role web`` serves HTTP and ``--role worker`` serves none."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bot import metrics
from bot.app import Runtime
from bot.nudges.purposes import REMIND, enqueue
from bot.storage.db import transaction
from bot.storage.models import Enrollment, StepProgress
from bot.web import MAX_BODY_BYTES, HttpRequest, HttpResult, WebApp, WebServer
from tests.conftest import ROOT, make_cohort


def _get(url: str, *, data: bytes | None = None, method: str | None = None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


def _families(body: bytes) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.fixture
def server() -> Iterator[WebServer]:
    seen: list[HttpRequest] = []

    def echo(request: HttpRequest) -> HttpResult:
        seen.append(request)
        return HttpResult(201, request.body[::-1], headers={"X-Echo": [request.method]})

    app = WebApp({"/echo": echo}, health={"mode": "test"})
    web = WebServer("127.0.0.1", 0, app)
    web.start()
    yield web
    web.stop()


def test_health_routes_and_limits(server: WebServer) -> None:
    status, body, ctype = _get(f"{server.url}/healthz")
    assert (status, json.loads(body), ctype) == (200, {"ok": True, "mode": "test"}, "application/json")
    assert _get(f"{server.url}/echo", data=b"abc")[:2] == (201, b"cba")
    assert _get(f"{server.url}/nope")[0] == 404
    assert _get(f"{server.url}/healthz", data=b"x")[0] == 405
    # An oversized declared body is refused before it is read (sent as headers only: the server answers at once).
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", "/echo")
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    with pytest.raises(ValueError, match="already taken"):
        server.app.add("/metrics", lambda r: HttpResult(200))


def test_metrics_parse_and_count_what_happened(rt: Runtime, server: WebServer) -> None:
    make_cohort(rt, "feedback-fundamentals", [("ana", "Europe/London")])
    metrics.watch_outbox(rt.db)
    with transaction(rt.factory) as session:
        sp = session.scalars(select(StepProgress).limit(1)).one()
        e = session.get(Enrollment, sp.enrollment_id)
        assert e is not None
        # One reminder through the outbox's one entry point, so the outbox has a pending row.
        enqueue(session, REMIND, (sp.id, 99), now=rt.clock.now(), person_id=e.person_id, enrollment_id=e.id,
                progress_id=sp.id, cohort_id=e.cohort_id)
    before = _families(_get(f"{server.url}/metrics")[1])
    metrics.sent("console", 0.02)
    metrics.rate_limited("console")
    metrics.acked("console", 0.004)
    metrics.lease_reclaimed(2)
    status, body, ctype = _get(f"{server.url}/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    after = _families(body)
    depth = after["blendwise_outbox_deliveries"]
    assert set(dict(k)["state"] for k in depth) == {"pending", "sending", "sent", "failed", "skipped"}
    assert depth[(("state", "pending"),)] >= 1
    key = (("platform", "console"),)
    assert after["blendwise_sends_total"][key] == before.get("blendwise_sends_total", {}).get(key, 0) + 1
    assert after["blendwise_rate_limited_total"][key] == before.get("blendwise_rate_limited_total", {}).get(key, 0) + 1
    assert after["blendwise_send_seconds_count"][key] >= 1
    assert after["blendwise_ack_seconds_count"][key] >= 1
    assert after["blendwise_lease_reclaims_total"][()] == before.get("blendwise_lease_reclaims_total", {}).get((), 0) + 2


def test_bind_address_is_honoured() -> None:
    web = WebServer("127.0.0.1", 0, WebApp())
    port = web.start()
    try:
        assert _get(f"http://127.0.0.1:{web.port}/healthz")[0] == 200
        with pytest.raises(OSError), socket.create_connection(("127.0.0.2", web.port), timeout=2):
            pass
    finally:
        web.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # stopped means closed


def test_a_taken_port_fails_start_with_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            WebServer("127.0.0.1", port, WebApp()).start()


# ---------------------------------------------------------------------- blendwise run --role
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(tmp_path: Path, role: str, port: int, *extra: str) -> subprocess.Popen[str]:
    (tmp_path / "app.yaml").write_text(
        textwrap.dedent(
            f"""\
            database_url: sqlite:///{tmp_path / "run.db"}
            content_dir: {ROOT / "content"}
            platforms: [console]
            log_format: json
            web: {{host: 127.0.0.1, port: {port}}}
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BLENDWISE_CONFIG": str(tmp_path / "app.yaml")}
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "--role", role, *extra], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 60) -> list[str]:
    """Read the child's output until a line contains ``needle`` (bounded wait on a real subprocess)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not seen; output: {''.join(lines)}")


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_run_role_web_serves_health_and_metrics(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(tmp_path, "web", port)
    try:
        lines = _wait_for_line(proc, "running as web")
        # log_format: json, one object a line.
        record = json.loads(next(line for line in lines if "running as web" in line))
        assert record["level"] == "INFO" and record["logger"] == "bot.app"
        status, body, _ = _get(f"http://127.0.0.1:{port}/healthz")
        assert (status, json.loads(body)) == (200, {"ok": True, "role": "web"})
        status, body, _ = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        depth = _families(body)["blendwise_outbox_deliveries"]
        assert depth[(("state", "pending"),)] == 0
    finally:
        assert _stop(proc) == 0


def test_run_role_worker_serves_no_http(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(tmp_path, "worker", port)
    try:
        _wait_for_line(proc, "running as worker")
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        assert _stop(proc) == 0


def test_run_with_an_unknown_role_is_one_line(tmp_path: Path) -> None:
    proc = _start(tmp_path, "janitor", _free_port())
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert out.strip().splitlines() == ["error: --role: 'janitor' is not one of all, web, worker"]
