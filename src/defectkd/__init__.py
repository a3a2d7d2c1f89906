"""defectkd: distil large defect-inspection models into small, fast edge students."""

__version__ = "0.1.0"

__all__ = ["__version__"]
