"""The receiver's web page in headless Chromium: the live view shows each device's latest result and the history
lists the stored rows. Skipped where no Chromium is installed (CI: `apt-get install -y chromium`)."""

import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from defectkd.deploy.sink import ZmqSink
from defectkd.serve import Receiver
from tests.stream_util import wait_for

pytest.importorskip("zmq")
CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)


def _chromium(tmp_path, url, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--window-size=1280,1000", *args,
           url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install -y chromium) for the headless page test")
def test_page_shows_latest_results_and_history(tmp_path):
    with Receiver("tcp://127.0.0.1:*", tmp_path / "store", http=0) as rx:
        url = rx.endpoint.replace("tcp://", "zmq://")
        for name, n in (("cam-a", 12), ("cam-b", 7)):
            with ZmqSink(url, device_id=name, send_frame=True) as sink:
                for i in range(n):
                    mask = np.zeros((60, 80), bool)
                    mask[28:32, 5:5 + 5 * i] = True
                    frame = np.full((60, 80, 3), 190, np.uint8)
                    sink.send({"frame": i, "crack_ratio": float(mask.mean()), "area_px": int(mask.sum()), "cracks": 1,
                               "longest_crack_px": 5.0 * i, "fps": 10.0}, mask=mask, frame=frame)
                    time.sleep(0.005)
        assert wait_for(lambda: rx.stats()["stored"] == 19)
        dom = _chromium(tmp_path, rx.http_url, "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        shot = tmp_path / "receiver.png"
        png = _chromium(tmp_path, rx.http_url, f"--screenshot={shot}")
    html = dom.stdout
    assert 'id="dev-cam-a"' in html and 'data-frame="11"' in html  # live view: the newest frame of each device
    assert 'id="dev-cam-b"' in html and 'data-frame="6"' in html
    assert "crack ratio 0.0458" in html  # cam-a frame 11: 4 x 55 px of 60 x 80
    assert html.count("<tr data-id=") == 19 and "19 results (newest first)" in html  # history
    assert html.count("<polyline") == 2  # one crack-ratio curve per device
    assert png.returncode == 0 and shot.stat().st_size > 10_000
