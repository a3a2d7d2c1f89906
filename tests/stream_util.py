"""Helpers for the streaming tests: a tiny ONNX segmenter (no torch), a synthetic video, free ports."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import cv2
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_onnx(path: Path, size: int = 32) -> Path:
    """A 1x1-conv 'segmenter' written with onnx.helper: crack where the pixel is dark (mean RGB < 0.5)."""
    import onnx
    from onnx import TensorProto, helper

    w = np.array([[[[10 / 3]], [[10 / 3]], [[10 / 3]]], [[[-10 / 3]], [[-10 / 3]], [[-10 / 3]]]], np.float32)
    b = np.array([0.0, 10.0], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w", "b"], ["logits"])], "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, size, size])],
        [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel()),
         helper.make_tensor("b", TensorProto.FLOAT, b.shape, b)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {"model": "tiny", "threshold": "0.5", "imgsz": str(size)}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def synthetic_video(path: Path, n: int = 20, size: tuple[int, int] = (64, 48), fps: float = 10.0) -> Path:
    """N frames (W, H = size) of a bright background with a dark crack whose length grows with the frame index;
    frame i has i in its top-left pixel's blue channel... (not exact after compression: tests use counts)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for i in range(n):
        frame = np.full((h, w, 3), 220, np.uint8)
        cv2.line(frame, (4, h // 2), (4 + (i * (w - 8)) // max(n - 1, 1), h // 2 + 3), (20, 20, 20), 3)
        writer.write(frame)
    writer.release()
    return path


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
