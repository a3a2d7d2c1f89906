"""Export of students for deployment (ONNX; OpenVINO and TensorRT come with the edge issue)."""

from defectkd.export.onnx_export import export_onnx

__all__ = ["export_onnx"]
