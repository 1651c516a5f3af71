"""Each endpoint over a real SQLite store, served by uvicorn on 127.0.0.1:0."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.routing import Route

from worker.api import openapi_schema

from .conftest import Api
from .data import (
    KYODO_URL,
    SUMMARY_WORD,
    SUMMIT_EVIDENCE,
    SUMMIT_TITLE,
    SUMMIT_TITLE_2,
    VISIT_TITLE,
    YONHAP_URL,
)


def test_healthz(api: Api) -> None:
    r = api.get("/healthz", auth=False)
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_readyz_when_the_database_answers(api: Api) -> None:
    r = api.get("/readyz", auth=False)
    assert r.status_code == 200
    assert r.json() == {
        "status": "ready",
        "checks": {"database": "ok"},
        "reasons": [],
    }


def test_alerts_newest_first_with_deliveries(api: Api) -> None:
    assert api.data is not None
    r = api.get("/api/alerts")
    assert r.status_code == 200
    alerts = r.json()["alerts"]
    assert [a["id"] for a in alerts] == [api.data.visit_alert, api.data.summit_alert]
    summit = alerts[1]
    assert summit["item"]["title"] == SUMMIT_TITLE
    assert summit["decision"]["evidence"][0]["text"] == SUMMIT_EVIDENCE
    by_channel = {d["channel"]: d for d in summit["deliveries"]}
    assert by_channel["console"]["status"] == "delivered"
    assert by_channel["webhook"]["status"] == "dead"
    assert by_channel["webhook"]["last_error"] == "HTTP 410 Gone"


def test_alerts_failed_limit_and_since(api: Api) -> None:
    assert api.data is not None
    failed = api.get("/api/alerts", params={"failed": "true"}).json()["alerts"]
    assert [a["id"] for a in failed] == [api.data.summit_alert]
    one = api.get("/api/alerts", params={"limit": "1"}).json()["alerts"]
    assert [a["id"] for a in one] == [api.data.visit_alert]
    recent = api.get("/api/alerts", params={"since": "2h"}).json()["alerts"]
    assert [a["id"] for a in recent] == [api.data.visit_alert]
    future = (api.data.now + timedelta(days=2)).date().isoformat()
    assert api.get("/api/alerts", params={"since": future}).json()["alerts"] == []


def test_one_alert_and_an_unknown_one(api: Api) -> None:
    assert api.data is not None
    r = api.get(f"/api/alerts/{api.data.visit_alert}")
    assert r.status_code == 200
    assert r.json()["item"]["title"] == VISIT_TITLE
    assert [d["status"] for d in r.json()["deliveries"]] == ["pending"]
    missing = api.get("/api/alerts/al_nope")
    assert missing.status_code == 404
    assert "al_nope" in missing.json()["error"]


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/api/alerts", {"limit": "many"}, "limit"),
        ("/api/alerts", {"limit": "0"}, "limit"),
        ("/api/alerts", {"limit": "100000"}, "limit"),
        ("/api/alerts", {"failed": "maybe"}, "failed"),
        ("/api/alerts", {"since": "last tuesday"}, "since"),
        ("/api/stories", {"since": "-3h"}, "since"),
        ("/api/stories", {"since": "24h", "until": "48h"}, "until"),
        ("/api/items", {}, "q"),
        ("/api/items", {"q": "summit", "limit": "x"}, "limit"),
        ("/api/items", {"q": "summit " * 200}, "q"),
        ("/api/digest", {"format": "pdf"}, "format"),
        ("/api/digest", {"until": "soon"}, "until"),
        ("/digest", {"since": "whenever"}, "since"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    api: Api, path: str, params: dict[str, str], param: str
) -> None:
    r = api.get(path, params=params)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"].startswith(f"{param}: ")


def test_stories_with_sources_from_two_outlets(api: Api) -> None:
    assert api.data is not None
    r = api.get("/api/stories")
    assert r.status_code == 200
    stories = r.json()["stories"]
    assert [s["id"] for s in stories] == [api.data.visit_story, api.data.summit_story]
    summit = stories[1]
    assert [s["source"] for s in summit["sources"]] == ["Kyodo News", "Yonhap"]
    assert [s["title"] for s in summit["sources"]] == [SUMMIT_TITLE, SUMMIT_TITLE_2]
    assert summit["rules"] == ["summit.trilateral"]
    assert summit["topics"] == ["summit"]
    assert [a["id"] for a in summit["alerts"]] == [api.data.summit_alert]
    assert summit["event"]["countries"] == ["CN", "JP", "KR"]


def test_stories_window(api: Api) -> None:
    assert api.data is not None
    # The visit story was seen 1 h ago, the summit story 3 h to 2 h ago.
    recent = api.get("/api/stories", params={"since": "90m"}).json()["stories"]
    assert [s["id"] for s in recent] == [api.data.visit_story]
    until = (api.data.now - timedelta(minutes=150)).isoformat()
    early = api.get("/api/stories", params={"since": "1d", "until": until}).json()
    assert [s["id"] for s in early["stories"]] == [api.data.summit_story]
    assert early["until"].endswith("Z")


def test_feeds_with_item_counts(api: Api) -> None:
    r = api.get("/api/feeds")
    assert r.status_code == 200
    feeds = r.json()["feeds"]
    assert [(f["url"], f["title"], f["items"]) for f in feeds] == [
        (KYODO_URL, "Kyodo News", 2),
        (YONHAP_URL, "Yonhap", 2),
    ]


def test_item_search_by_a_word_of_the_summary(api: Api) -> None:
    r = api.get("/api/items", params={"q": SUMMARY_WORD})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == SUMMARY_WORD
    assert [i["title"] for i in body["items"]] == [SUMMIT_TITLE]
    absent = api.get("/api/items", params={"q": "volcano"}).json()
    assert absent["items"] == []


def test_item_search_limit(api: Api) -> None:
    both = api.get("/api/items", params={"q": "trilateral"}).json()["items"]
    assert {i["id"] for i in both} == {"guid:kyodo-1", "guid:yonhap-1"}
    one = api.get("/api/items", params={"q": "trilateral", "limit": "1"}).json()
    assert len(one["items"]) == 1


def test_digest_json(api: Api) -> None:
    r = api.get("/api/digest", params={"since": "24h"})
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "feedwatch.digest"
    titles = [s["title"] for s in body["stories"]]
    assert titles == [VISIT_TITLE, SUMMIT_TITLE]
    assert SUMMIT_EVIDENCE in body["stories"][1]["evidence"]


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [
        ("text", "text/plain; charset=utf-8"),
        ("md", "text/markdown; charset=utf-8"),
        ("html", "text/html; charset=utf-8"),
    ],
)
def test_digest_formats(api: Api, fmt: str, media_type: str) -> None:
    r = api.get("/api/digest", params={"format": fmt})
    assert r.status_code == 200
    assert r.headers["content-type"] == media_type
    for expected in (SUMMIT_TITLE, VISIT_TITLE, "Yonhap", SUMMIT_EVIDENCE):
        assert expected in r.text


def test_digest_page_is_html_with_a_strict_policy(api: Api) -> None:
    r = api.get("/digest")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "<h1" in r.text and SUMMIT_TITLE in r.text
    empty = api.get("/digest", params={"since": "1m"})
    assert "Nothing matched in this period." in empty.text


def test_unknown_path_and_method_are_json_errors(api: Api) -> None:
    r = api.get("/api/nothing")
    assert r.status_code == 404
    assert r.json() == {"error": "Not Found"}
    post = api.request("POST", "/api/alerts")
    assert post.status_code == 405
    assert post.json() == {"error": "Method Not Allowed"}
    assert set(post.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_openapi_describes_every_route(api: Api) -> None:
    r = api.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc == openapi_schema()
    assert doc["openapi"].startswith("3.")
    routed = {route.path for route in api.app.routes if isinstance(route, Route)}
    assert set(doc["paths"]) == routed
    for path, item in doc["paths"].items():
        op = item["get"]
        assert op["summary"] and op["responses"], path
    open_paths = {
        p for p, item in doc["paths"].items() if item["get"].get("security") == []
    }
    assert open_paths == {"/healthz", "/readyz"}


def test_digest_filters_by_topic_and_rule(api: Api) -> None:
    everything = api.get("/api/digest").json()["stories"]
    visits = api.get("/api/digest", params={"topic": "visit"}).json()["stories"]
    assert visits and all("visit" in s["topics"] for s in visits)
    assert len(visits) < len(everything)
    rule = everything[0]["rules"][0]
    by_rule = api.get("/api/digest", params=[("rule", rule), ("rule", "x")]).json()
    assert all(rule in s["rules"] for s in by_rule["stories"])
    none = api.get("/api/digest", params={"rule": "no-such-rule"}).json()["stories"]
    assert none == []
