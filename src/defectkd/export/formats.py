"""The export formats: one table that drives `defectkd export`, `defectkd benchmark` and the tests.

Each row says what the format produces (suffix), where it runs, which export options it accepts and
what it needs installed. Aliases and a "did you mean" keep typos to one clear line.
"""

from __future__ import annotations

import difflib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from defectkd.core.errors import ConfigError

INT8_OPTIONS = frozenset({"int8", "data", "fraction", "max_drop"})


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str  # file suffix, or the folder suffix of a multi-file format
    devices: str
    options: frozenset[str]  # export options besides imgsz, opset, out, image, overwrite
    module: str | None  # the Python module the format needs
    needs_cuda: bool = False
    description: str = ""

    def output_for(self, weights: Path) -> Path:
        """Default output next to the weights: best.pt -> best.onnx, best.int8.onnx, best_openvino_model/."""
        return weights.with_name(weights.stem + self.suffix)

    def missing(self) -> str | None:
        """Why the format cannot be produced on this machine, or None."""
        if self.module and importlib.util.find_spec(self.module) is None:
            extra = {"openvino": "openvino", "tensorrt": "tensorrt"}.get(self.module)
            hint = f" (pip install 'defectkd[{extra}]')" if extra else ""
            return f"{self.module} is not installed{hint}"
        if self.needs_cuda and not _cuda_available():
            return "needs an NVIDIA GPU (none visible)"
        return None


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("onnx", ".onnx", "CPU, NVIDIA GPU (ONNX Runtime)", frozenset({"dynamic"}) | INT8_OPTIONS,
                 "onnxruntime", description="FP32 graph; --int8 gives onnx-int8"),
    ExportFormat("onnx-int8", ".int8.onnx", "CPU (ONNX Runtime; fastest with AVX-512 VNNI / AVX-VNNI)",
                 frozenset({"dynamic"}) | INT8_OPTIONS, "onnxruntime",
                 description="static post-training INT8 (QDQ), calibrated on training images"),
    ExportFormat("openvino", "_openvino_model", "CPU, Intel GPU/NPU (OpenVINO)",
                 frozenset({"dynamic", "half"}) | INT8_OPTIONS, "openvino",
                 description="OpenVINO IR (.xml + .bin); --half stores FP16 weights; --int8 converts the QDQ graph"),
    ExportFormat("engine", ".engine", "NVIDIA GPU (TensorRT)", frozenset({"dynamic", "half"}) | INT8_OPTIONS,
                 "tensorrt", needs_cuda=True,
                 description="TensorRT engine for the GPU it is built on; --int8 builds from the QDQ graph"),
)}

ALIASES = {"trt": "engine", "tensorrt": "engine", "ov": "openvino", "int8": "onnx-int8", "onnx_int8": "onnx-int8",
           "onnxint8": "onnx-int8", "ort": "onnx", "onnxruntime": "onnx"}


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def resolve_format(name: str, int8: bool = False) -> ExportFormat:
    """The format for a --format value (aliases, any case); `--int8` turns onnx into onnx-int8."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in FORMATS:
        choices = sorted(FORMATS) + sorted(ALIASES)
        close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
        hint = f"; did you mean {ALIASES.get(close[0], close[0])!r}?" if close else ""
        raise ConfigError(f"--format {name!r} is not a format (choose from: {', '.join(FORMATS)}){hint}")
    if int8 and key == "onnx":
        key = "onnx-int8"
    return FORMATS[key]


def check_options(fmt: ExportFormat, given: dict[str, object]) -> None:
    """One line naming the first option the format does not take (only options set away from their default)."""
    for option, value in given.items():
        if value in (None, False) or option in fmt.options:
            continue
        allowed = ", ".join(f"--{o.replace('_', '-')}" for o in sorted(fmt.options))
        raise ConfigError(f"--{option.replace('_', '-')} does not apply to --format {fmt.name} (it takes: {allowed})")


def format_table() -> list[dict[str, str]]:
    """Rows for `defectkd export --list` and the docs: name, suffix, devices, options, status."""
    rows = []
    for f in FORMATS.values():
        aliases = [a for a, target in ALIASES.items() if target == f.name]
        rows.append({"format": f.name, "aliases": ", ".join(aliases), "suffix": f.suffix, "devices": f.devices,
                     "options": " ".join(f"--{o.replace('_', '-')}" for o in sorted(f.options)),
                     "status": f.missing() or "available", "description": f.description})
    return rows
