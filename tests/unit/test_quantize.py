"""INT8 quantization helpers that need no model."""

import logging

from defectkd.export.quantize import _QuietAxisWarnings


def test_only_ort_per_channel_fallback_warnings_are_dropped():
    quiet = _QuietAxisWarnings()

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("root", logging.WARNING, __file__, 1, msg, None, None)

    assert not quiet.filter(record("Axis 1 is out-of-range for weight 'rect.head.1.weight' with rank 1"))
    assert quiet.filter(record("Please consider to run pre-processing before quantization"))
