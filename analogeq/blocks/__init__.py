"""Energy-based analog blocks: the layered resistive network (:mod:`.resistive`), its
gradient estimators (:mod:`.gradients`) and its netlist text (:mod:`.netlists`)."""

from .resistive import BlockGradients, BlockState, ResistiveBlock
from .signal import LayerSignal, layer_signal

__all__ = ["BlockGradients", "BlockState", "LayerSignal", "ResistiveBlock", "layer_signal"]
