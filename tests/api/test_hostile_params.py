"""Time parameters past the calendar's range are 400s naming the parameter, not 500s."""

from __future__ import annotations

import pytest

from .conftest import Api


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/api/stories", {"since": "9999999999999d"}, "since"),
        ("/api/alerts", {"since": "99999999999999999999999s"}, "since"),
        ("/api/digest", {"until": "0001-01-01T00:00:00+14:00"}, "until"),
        ("/digest", {"since": "9999999999999d"}, "since"),
    ],
)
def test_out_of_range_times_are_400_naming_the_parameter(
    api: Api, path: str, params: dict[str, str], param: str
) -> None:
    r = api.get(path, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(f"{param}: ")
    assert "out of range" in r.json()["error"]
