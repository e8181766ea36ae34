"""Energy-based analog blocks: the layered resistive network (:mod:`.resistive`), its
gradient estimators (:mod:`.gradients`) and its netlist text (:mod:`.netlists`)."""

from .resistive import BlockGradients, BlockState, ResistiveBlock

__all__ = ["BlockGradients", "BlockState", "ResistiveBlock"]
