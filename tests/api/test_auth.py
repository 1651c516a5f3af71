"""Bearer-token authentication: everything but the health checks needs the token."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from .conftest import TOKEN, Api, running_api

PROTECTED = [
    "/metrics",
    "/openapi.json",
    "/api/alerts",
    "/api/alerts/al_summit",
    "/api/stories",
    "/api/feeds",
    "/api/items?q=summit",
    "/api/digest",
    "/digest",
    "/no/such/path",
]


@pytest.mark.parametrize("path", PROTECTED)
def test_missing_token_is_401_with_a_bearer_challenge(api: Api, path: str) -> None:
    r = api.get(path, auth=False)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="feedwatch"'
    assert r.json() == {"error": "a bearer token is required"}


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer wrong",
        f"Bearer {TOKEN.upper()}",
        "Bearer é",
    ],
)
def test_wrong_token_is_401_invalid_token(api: Api, header: str) -> None:
    r = api.get(
        "/api/alerts", auth=False, headers={"Authorization": header.encode("utf-8")}
    )
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert r.json() == {"error": "the bearer token is not valid"}


@pytest.mark.parametrize(
    "header", [f"Basic {TOKEN}", TOKEN, "Bearer", f"Token {TOKEN}"]
)
def test_other_schemes_are_not_a_token(api: Api, header: str) -> None:
    r = api.get("/api/alerts", auth=False, headers={"Authorization": header})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="feedwatch"'


@pytest.mark.parametrize("path", ["/api/alerts", "/api/feeds", "/metrics", "/digest"])
def test_right_token_is_let_in(api: Api, path: str) -> None:
    assert api.get(path).status_code == 200
    lower_scheme = {"Authorization": f"bearer {TOKEN}"}
    assert api.get(path, auth=False, headers=lower_scheme).status_code == 200


def test_health_checks_and_websub_need_no_token(api: Api) -> None:
    assert api.get("/healthz", auth=False).status_code == 200
    assert api.get("/readyz", auth=False).status_code == 200
    # Open but not yet routed: the WebSub callback will live here.
    assert api.get("/websub/abc", auth=False).status_code == 404


def test_query_token_only_on_the_digest_page(api: Api) -> None:
    assert api.get("/digest", auth=False, params={"token": TOKEN}).status_code == 200
    wrong = api.get("/digest", auth=False, params={"token": "nope"})
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    for path in ("/api/alerts", "/api/digest", "/metrics"):
        r = api.get(path, auth=False, params={"token": TOKEN})
        assert r.status_code == 401, path


def test_no_token_configured_is_open(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="worker.api"),
        running_api(sqlite_url, token=None) as open_api,
    ):
        for path in ("/api/alerts", "/api/feeds", "/metrics", "/digest"):
            assert open_api.get(path, auth=False).status_code == 200, path
        # A token sent anyway does no harm.
        assert open_api.get("/api/alerts").status_code == 200
    # Served on loopback: no warning about the open API.
    assert not [r for r in caplog.records if "no token" in r.getMessage()]


def test_empty_token_means_open(tmp_path: Path) -> None:
    with running_api(f"sqlite:///{tmp_path / 'x.db'}", token="") as open_api:
        assert open_api.get("/api/feeds", auth=False).status_code == 200
