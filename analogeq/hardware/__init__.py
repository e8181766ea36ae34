"""The hardware around the blocks: memristor arrays (:mod:`.memristors`), crossbar tiles
and their wires (:mod:`.tiles`), and the boundary buffer (:mod:`.buffer`)."""

from .buffer import CROSSINGS, Buffer, ep_buffer_requirement_bits
from .memristors import MemristorArray
from .tiles import (
    TileAssignment,
    cell_nodes,
    describe_mapping,
    map_to_tiles,
    num_wire_segments,
    tile_elements,
    tile_ports,
    wire_circuit,
)

__all__ = [
    "CROSSINGS",
    "Buffer",
    "MemristorArray",
    "TileAssignment",
    "cell_nodes",
    "describe_mapping",
    "ep_buffer_requirement_bits",
    "map_to_tiles",
    "num_wire_segments",
    "tile_elements",
    "tile_ports",
    "wire_circuit",
]
