"""Frame sources: video files with a stride, end of stream, camera/stream detection, reconnection with back-off,
and the numpy skeleton used where scikit-image is missing."""

import cv2
import numpy as np
import pytest

from defectkd.deploy.sources import FrameSource, SourceError, frames, source_kind
from tests.stream_util import synthetic_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return synthetic_video(tmp_path_factory.mktemp("video") / "clip.mp4", n=20, size=(64, 48), fps=10.0)


def test_video_frames_stride_and_end_of_stream(clip):
    src = frames(clip)
    got = [(i, rgb.shape, info["kind"]) for i, rgb, info in src]
    assert [g[0] for g in got] == list(range(20)) and got[0][1:] == ((48, 64, 3), "video")
    assert src.stats["ended"] and not src.stats["gave_up"] and src.stats["read"] == 20 and src.fps == 10.0
    strided = frames(clip, vid_stride=3)
    assert len(strided) == 7
    assert [i for i, _, _ in strided] == [0, 3, 6, 9, 12, 15, 18]
    assert strided.output_fps == pytest.approx(10 / 3)
    assert [i for i, _, _ in frames(clip, vid_stride=2, max_frames=4)] == [0, 2, 4, 6]
    # the frames are the video's (RGB): the dark crack is there and grows
    first, last = (rgb for i, rgb, _ in frames(clip, vid_stride=19))
    assert (first < 100).all(axis=2).sum() < (last < 100).all(axis=2).sum()


def test_images_and_kinds(tmp_path, clip):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"im{i}.png"), np.full((8, 10, 3), 40 * i, np.uint8))
    got = list(frames(tmp_path))
    assert [i for i, _, _ in got] == [0, 1, 2] and got[2][2]["image"].endswith("im2.png")
    assert got[0][1].shape == (8, 10, 3)
    assert source_kind("0") == "camera" and source_kind(1) == "camera"
    assert source_kind("rtsp://10.0.0.2:554/live") == "stream" and source_kind("http://cam/video.mjpg") == "stream"
    assert source_kind(clip) == "video" and source_kind(tmp_path) == "images"
    with pytest.raises(SourceError, match="no such video file"):
        frames(tmp_path / "missing.mp4")
    with pytest.raises(SourceError, match="vid-stride"):
        frames(clip, vid_stride=0)


class FakeCapture:
    """Delivers `n` frames, then fails every read (a dropped stream)."""

    def __init__(self, n):
        self.n = n
        self.released = False

    def read(self):
        if self.n <= 0:
            return False, None
        self.n -= 1
        return True, np.zeros((4, 6, 3), np.uint8)

    def grab(self):
        return self.read()[0]

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0

    def set(self, *args):
        return True

    def release(self):
        self.released = True


def test_stream_reconnects_with_back_off_then_gives_up():
    opens = iter([FakeCapture(3), None, None, FakeCapture(2)])  # drop after 3 frames, 2 failed reopen tries
    waits = []
    src = FrameSource("rtsp://camera/live", retries=4, backoff=0.5, max_backoff=1.5,
                      opener=lambda s, k: next(opens, None), sleep=waits.append)
    ids = [i for i, _, info in src]
    assert ids == [0, 1, 2, 3, 4]  # ids keep counting across the reconnection
    # first drop: 0.5, 1.0, then success (3rd try); second drop: the streak restarted after good frames
    assert waits == [0.5, 1.0, 1.5, 0.5, 1.0, 1.5, 1.5]
    assert src.stats["reconnects"] == 7 and src.stats["gave_up"] and src.stats["failed_reads"] == 2
    assert src.live and not src.stats["ended"]


def test_live_source_with_a_stride_and_max_frames():
    src = FrameSource("1", vid_stride=2, max_frames=3, opener=lambda s, k: FakeCapture(100), sleep=lambda s: None)
    assert src.kind == "camera" and [i for i, _, _ in src] == [0, 2, 4] and src.stats["reconnects"] == 0
    with pytest.raises(SourceError, match="cannot open camera"):
        FrameSource("3", opener=lambda s, k: None)


def test_numpy_skeleton_measures_like_scikit_image():
    from skimage.morphology import skeletonize

    from defectkd.deploy.analysis import skeleton_lengths, thin
    from defectkd.tasks.segment.synthetic import synth_crack_sample

    line = np.zeros((16, 16), bool)
    line[5, 2:12] = True
    assert thin(line).sum() == 10
    thick = np.zeros((20, 30), bool)
    thick[8:12, 3:25] = True  # a 4-px-thick bar thins to one line along its middle
    assert thin(thick).any(axis=0)[5:22].all() and thin(thick).sum(axis=0).max() == 1
    rel = []
    for seed in range(8):
        mask = synth_crack_sample(seed, 128)[1] > 0
        n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        if n < 2:
            continue
        a = skeleton_lengths(skeletonize(mask), labels, n)[1:].max()
        b = skeleton_lengths(thin(mask), labels, n)[1:].max()
        rel.append(b / a - 1)
    assert rel and abs(np.mean(rel)) < 0.03 and np.max(np.abs(rel)) < 0.08
