"""User-facing errors: the CLI prints their message as one line and exits with status 2 (130 for Interrupted)."""


class DefectKDError(Exception):
    """A problem with the user's input (file, field, value) rather than a bug in defectkd."""


class DataError(DefectKDError):
    """A data set, image or mask cannot be used."""


class ConfigError(DefectKDError):
    """A config file, key or value is invalid."""


class WeightsError(DefectKDError):
    """A weights file is missing, unsafe or does not match a known model."""


class TrainingError(DefectKDError):
    """Training went wrong in a way the user can act on (e.g. it diverged)."""


class ExportError(DefectKDError):
    """The exported model is invalid or disagrees with PyTorch."""


class Interrupted(DefectKDError):
    """The user stopped a run (Ctrl-C); the message says what was kept and how to resume."""
