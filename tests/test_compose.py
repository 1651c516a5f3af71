"""docker-compose.yml, the Dockerfile and the worker's container health check.

Docker does not run here, so the files are parsed and cross-checked against the
repository: the mounted config must load, copied paths must exist, ports stay on
loopback. The health check script runs for real against loopback sockets.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import shlex
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from worker.config import EmailChannelSettings, load_settings
from worker.demo.server import DemoFeedServer, feed_files

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
HEALTHCHECK_SCRIPT = ROOT / "deploy" / "healthcheck.py"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    assert "version" not in data, "the Compose specification has no version key"
    return data


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No FEEDWATCH_* variable of the test run leaks into loaded settings."""
    for key in [k for k in os.environ if k.startswith("FEEDWATCH_")]:
        monkeypatch.delenv(key)
    return monkeypatch


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, from either the mapping or the KEY=VALUE list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def published_ports(service: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(host_ip, container_port) of every published port, short or long syntax."""
    out: list[tuple[str | None, str]] = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((port.get("host_ip"), str(port["target"])))
            continue
        spec = str(port).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        host_ip = parts[0] if len(parts) == 3 else None
        out.append((host_ip, parts[-1]))
    return out


def config_mount(worker: dict[str, Any]) -> tuple[Path, str]:
    """(file in the repo, path in the container) of the worker's config mount."""
    for volume in worker["volumes"]:
        source, target = str(volume).split(":")[:2]
        if target.startswith("/etc/feedwatch/"):
            return (COMPOSE_FILE.parent / source).resolve(), target
    raise AssertionError("the worker mounts no config under /etc/feedwatch/")


# --- docker-compose.yml -----------------------------------------------------


def test_the_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"worker", "postgres", "mailpit"} <= set(services)


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable", False), name
        test = check["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name


def test_the_worker_waits_for_a_healthy_postgres(
    services: dict[str, dict[str, Any]],
) -> None:
    depends = services["worker"]["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    for name, dep in depends.items():
        assert name in services
        if dep["condition"] == "service_healthy":
            assert services[name].get("healthcheck"), name


def test_the_worker_runs_two_replicas_of_the_local_build(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["build"] in (".", {"context": "."})
    _, target = config_mount(worker)
    assert worker["command"] == ["run", "--config", target]
    # Two replicas cannot share a container name or a host port.
    assert "container_name" not in worker
    assert not worker.get("ports")


def test_published_ports_bind_loopback_only(
    services: dict[str, dict[str, Any]],
) -> None:
    published = {name: published_ports(service) for name, service in services.items()}
    assert any(published.values())
    for name, ports in published.items():
        for host_ip, _ in ports:
            assert host_ip == "127.0.0.1", f"{name} publishes on {host_ip or 'all'}"


def test_mailpit_publishes_smtp_and_the_web_ui(
    services: dict[str, dict[str, Any]],
) -> None:
    mailpit = services["mailpit"]
    assert mailpit["image"].startswith("axllent/mailpit")
    assert {port for _, port in published_ports(mailpit)} == {"1025", "8025"}


def test_postgres_matches_the_workers_database_url(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    url = urlsplit(environment(services["worker"])["FEEDWATCH_DATABASE"])
    env = environment(postgres)
    assert url.scheme == "postgresql"
    assert url.hostname == "postgres"
    assert (url.port or 5432) == 5432
    assert url.username == env["POSTGRES_USER"]
    assert url.password == env["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == env["POSTGRES_DB"]
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]


def test_the_mounted_config_loads_with_the_compose_environment(
    services: dict[str, dict[str, Any]], clean_env: pytest.MonkeyPatch
) -> None:
    worker = services["worker"]
    source, _ = config_mount(worker)
    assert source.is_file(), f"{source} is mounted but missing"
    env = environment(worker)
    for key, value in env.items():
        clean_env.setenv(key, value)

    settings = load_settings(source)

    assert settings.database == env["FEEDWATCH_DATABASE"]
    channels = {c.type: c for c in settings.channels}
    assert {"console", "email"} <= set(channels)
    email = channels["email"]
    assert isinstance(email, EmailChannelSettings)
    assert email.host == "mailpit"
    assert str(email.port) in {port for _, port in published_ports(services["mailpit"])}
    assert settings.feeds, "the compose worker polls nothing"


def test_the_config_polls_the_demo_feeds_service(
    services: dict[str, dict[str, Any]], clean_env: pytest.MonkeyPatch
) -> None:
    source, _ = config_mount(services["worker"])
    settings = load_settings(source)
    demo = services["demo-feeds"]
    port = demo["command"][demo["command"].index("--port") + 1]
    bundled = {p.name for p in feed_files()}
    assert {urlsplit(f.url).path.lstrip("/") for f in settings.feeds} == bundled
    for feed in settings.feeds:
        url = urlsplit(feed.url)
        assert (url.hostname, str(url.port)) == ("demo-feeds", port)
    # The demo server is on a private compose-network address.
    assert settings.fetch.allow_private_addresses
    assert f"127.0.0.1:{port}/" in " ".join(demo["healthcheck"]["test"])


def test_the_demo_feeds_entrypoint_takes_its_flags(
    services: dict[str, dict[str, Any]],
) -> None:
    demo = services["demo-feeds"]
    assert demo["entrypoint"][:2] == ["python", "-m"]
    # --help rather than serving: test_demo_feeds.py runs the server for real.
    run = subprocess.run(
        [sys.executable, *demo["entrypoint"][1:], "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    for flag in (a for a in demo["command"] if a.startswith("--")):
        assert flag in run.stdout


# --- Dockerfile and .dockerignore -------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def copy_sources() -> list[str]:
    """Every build-context path a COPY/ADD reads (not --from stages)."""
    sources: list[str] = []
    for word, args in dockerfile_instructions():
        if word not in ("COPY", "ADD"):
            continue
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        assert "--from" not in args
        sources.extend(parts[:-1])
    return sources


def test_the_dockerfile_builds_a_non_root_feedwatch_image() -> None:
    instructions = dockerfile_instructions()
    words = [w for w, _ in instructions]
    args = dict(instructions)
    assert args["FROM"] == "python:3.11-slim"
    assert any(w == "RUN" and 'pip install ".[postgres]"' in a for w, a in instructions)
    user = args["USER"].split(":")[0]
    assert user not in ("root", "0")
    # USER comes after the install, so pip ran as root and the daemon does not.
    last_run = max(i for i, w in enumerate(words) if w == "RUN")
    assert words.index("USER") > last_run
    assert args["ENTRYPOINT"] == '["feedwatch"]'
    assert "HEALTHCHECK" in words


def test_the_dockerfile_copies_files_that_exist() -> None:
    sources = copy_sources()
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_the_image_gets_what_the_wheel_is_built_from() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed |= set(wheel.get("packages", []))
    needed |= set(wheel.get("force-include", {}))
    assert needed <= set(copy_sources())


def test_the_healthcheck_script_is_copied_where_the_checks_run_it(
    services: dict[str, dict[str, Any]],
) -> None:
    instructions = dockerfile_instructions()
    copied = {
        shlex.split(a)[-1]
        for w, a in instructions
        if w == "COPY" and "deploy/healthcheck.py" in a
    }
    assert len(copied) == 1
    target = copied.pop()
    image_check = dict(instructions)["HEALTHCHECK"]
    assert target in image_check
    assert target in services["worker"]["healthcheck"]["test"]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore drops ``path`` (or a parent of it) from the context."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").strip("/")
        candidates = [pat, pat.removeprefix("**/")]
        if any(fnmatch.fnmatch(p, c) for p in prefixes for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_the_sources_and_drops_local_state() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in copy_sources():
        assert not dockerignored(source, patterns), f"{source} is dockerignored"
    for local in (".git", ".venv", "data", "worker/__pycache__/x.pyc", ".env"):
        assert dockerignored(local, patterns), f"{local} would enter the context"


# --- deploy/healthcheck.py --------------------------------------------------


@pytest.fixture(scope="module")
def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fw_healthcheck", HEALTHCHECK_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def named_process(tmp_path: Path) -> Iterator[str]:
    """A live process whose command name is unique to this test."""
    name = f"fw-probe-{uuid.uuid4().hex[:8]}"
    script = tmp_path / name
    script.write_text("import sys\nsys.stdin.read()\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE)
    # Until the child has exec'd, /proc shows the parent's command line: wait for it.
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    deadline = time.monotonic() + 10
    while cmdline.exists() and name.encode() not in cmdline.read_bytes():
        assert time.monotonic() < deadline, "the probe process never started"
        time.sleep(0.01)
    try:
        yield name
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_healthcheck_finds_a_live_process_by_command_name(
    healthcheck: ModuleType, named_process: str
) -> None:
    assert healthcheck.daemon_running(named_process)
    assert not healthcheck.daemon_running(named_process + "-absent")


def test_healthcheck_database_reachability(healthcheck: ModuleType) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        url = f"postgresql://fw:pw@127.0.0.1:{port}/fw"
        assert healthcheck.database_problem(url) is None
    problem = healthcheck.database_problem(url)
    assert problem is not None and f"127.0.0.1:{port}" in problem
    # SQLite and unset URLs have nothing to reach over the network.
    assert healthcheck.database_problem("sqlite:///data/feedwatch.db") is None
    assert healthcheck.database_problem(None) is None


def test_healthcheck_endpoint(healthcheck: ModuleType) -> None:
    with DemoFeedServer() as server:
        assert healthcheck.endpoint_problem(server.urls()[0]) is None
        missing = f"{server.base_url}/health"
        assert healthcheck.endpoint_problem(missing) == f"{missing}: HTTP 404"
    assert "not http" in healthcheck.endpoint_problem("file:///etc/passwd")
    assert healthcheck.endpoint_problem(None) is None


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_healthcheck_main_exit_status(
    healthcheck: ModuleType,
    named_process: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("FEEDWATCH_DATABASE", raising=False)
    monkeypatch.delenv("FEEDWATCH_HEALTH_URL", raising=False)
    assert healthcheck.main(named_process) == 0
    assert capsys.readouterr().out == "healthy\n"

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    monkeypatch.setenv("FEEDWATCH_DATABASE", f"postgresql://fw@127.0.0.1:{port}/fw")
    assert healthcheck.main(named_process + "-absent") == 1
    out = capsys.readouterr().out
    assert f"no running {named_process}-absent process" in out
    assert f"database 127.0.0.1:{port} is unreachable" in out
