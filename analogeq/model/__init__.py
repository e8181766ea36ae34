"""Models: analog blocks as layers chained with digital ones (:class:`FFEBM`)."""

from .ffebm import FFEBM, GRADIENT_MODES, AnalogLayer

__all__ = ["FFEBM", "GRADIENT_MODES", "AnalogLayer"]
