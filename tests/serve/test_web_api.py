"""The web API under the receiver: a token when set, history in pages, rows clipped, strict JSON only."""

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from defectkd.deploy.sink import ZmqSink
from defectkd.serve import Receiver
from defectkd.serve.web import MAX_STRING, clip, clip_row
from tests.stream_util import wait_for

pytest.importorskip("zmq")


def _get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, dict(r.headers), r.read()


def _code(url, headers=None):
    try:
        return _get(url, headers)[0]
    except urllib.error.HTTPError as exc:
        return exc.code


def test_token_pages_and_clipped_rows(tmp_path):
    with Receiver("tcp://127.0.0.1:*", tmp_path / "store", http=0, http_token="s3cret") as rx:
        with ZmqSink(rx.endpoint, device_id="cam") as sink:
            for i in range(45):
                sink.send({"frame": i, "crack_ratio": 0.5, "note": "n" * 5000 if i == 44 else "ok"},
                          mask=np.ones((4, 4), bool))
        assert wait_for(lambda: rx.stats()["stored"] == 45)
        base = rx.http_url
        for path in ("", "api/latest", "api/stats", "api/results", "files/1/mask"):
            assert _code(base + path) == 401  # nothing without the token
        assert _code(base + "api/stats?token=wrong") == 401
        assert _code(base + "api/stats", {"Authorization": "Bearer s3cret"}) == 200
        status, headers, page = _get(base + "?token=s3cret")
        assert status == 200 and b"defectkd receiver" in page
        cookie = headers["Set-Cookie"].split(";")[0]
        assert cookie == "defectkd_token=s3cret" and "HttpOnly" in headers["Set-Cookie"]
        assert _code(base + "files/1/mask", {"Cookie": cookie}) == 200  # the page's images carry the cookie
        seen, url = [], base + "api/results?limit=20&device=cam"
        while url:
            body = json.loads(_get(url, {"Cookie": cookie})[2])
            seen += [r["frame"] for r in body["results"]]
            url = base + body["next"].lstrip("/") if body["next"] else None
        assert seen == list(range(44, -1, -1))  # three pages, newest first, each row once
        assert _code(base + "api/results?limit=100000", {"Cookie": cookie}) == 200
        assert len(json.loads(_get(base + "api/results?limit=100000", {"Cookie": cookie})[2])["results"]) == 45
        latest = json.loads(_get(base + "api/latest", {"Cookie": cookie})[2])["results"][0]
        assert latest["frame"] == 44 and latest["metrics"]["note"].endswith("(5000 characters)")
        assert len(latest["metrics"]["note"]) < MAX_STRING + 40


def test_clip_cuts_strings_lists_objects_and_non_finite_numbers():
    assert clip("x" * 10) == "x" * 10 and clip("y" * 600).endswith("... (600 characters)")
    assert clip(list(range(150)))[-1] == "... (150 items)" and len(clip(list(range(150)))) == 101
    assert clip({str(i): i for i in range(120)})["..."] == "120 keys"
    assert clip(float("nan")) is None and clip({"a": [float("inf")]}) == {"a": [None]}
    big = clip_row({"id": 1, "metrics": {f"k{i}": "v" * 400 for i in range(90)}})
    assert set(big["metrics"]) == {"clipped"}


def test_a_web_view_beyond_loopback_without_a_token_is_warned(tmp_path):
    rx = Receiver("tcp://127.0.0.1:*", tmp_path / "s", http="0.0.0.0:0")
    assert rx.web_insecure and any("--http-token" in w for w in rx.warnings())
    assert not Receiver("tcp://127.0.0.1:*", tmp_path / "s", http="0.0.0.0:0", http_token="t").web_insecure
    assert not Receiver("tcp://127.0.0.1:*", tmp_path / "s", http=0).web_insecure
