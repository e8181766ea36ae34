"""The digital buffer at the boundary between the digital and analog halves (docs/physics.md,
"The hardware around the blocks").

It holds the vectors going into DACs, the values read from ADCs and the EP measurements
that must wait until the nudged phases finish. :class:`Buffer` is an accounting model of
that memory: every array is stored at a stated resolution (``bits`` per value), occupancy
is counted in bits, and a store that would exceed the capacity raises
:class:`BufferOverflowError` instead of silently spilling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from ..errors import BufferOverflowError

__all__ = ["Buffer", "BufferOverflowError", "CROSSINGS", "ep_buffer_requirement_bits"]

#: What a stored array is: values headed for DACs, values read from ADCs, or plain
#: digital data (e.g. EP measurements derived digitally, errors handed to a block).
CROSSINGS = ("dac", "adc", None)


@dataclass(frozen=True)
class _Entry:
    array: np.ndarray
    bits: int
    crossing: str | None

    @property
    def size_bits(self) -> int:
        return int(self.array.size) * self.bits


def _bits_arg(bits: int, what: str) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or bits < 1:
        raise ValueError(f"{what}: bits must be an int >= 1, got {bits!r}")
    return int(bits)


class Buffer:
    """A digital memory of ``capacity_bits`` bits holding named arrays.

    Each stored value occupies ``bits`` bits (the resolution it is kept at); an array of
    ``n`` values occupies ``n * bits``. Replacing a name frees its old array first.

    Args:
        capacity_bits: capacity in bits (>= 1).

    Counters (see :meth:`stats`): conversions crossing the boundary (one DAC conversion per
    value stored with ``crossing="dac"``, one ADC conversion per value stored with
    ``crossing="adc"``), cumulative bits stored, current and peak occupancy.
    """

    def __init__(self, capacity_bits: int) -> None:
        self.capacity_bits = _bits_arg(capacity_bits, "Buffer capacity")
        self._entries: dict[str, _Entry] = {}
        self.occupancy_bits = 0
        self.peak_bits = 0
        self.bits_stored = 0
        self.stores = 0
        self.dac_conversions = 0
        self.adc_conversions = 0

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> list[str]:
        """Names of the stored arrays, in storage order."""
        return list(self._entries)

    @property
    def free_bits(self) -> int:
        """Capacity not in use, in bits."""
        return self.capacity_bits - self.occupancy_bits

    def store(self, name: str, array: ArrayLike, bits: int, *, crossing: str | None = None) -> None:
        """Store ``array`` under ``name`` at ``bits`` bits per value.

        Args:
            name: key (replaces an existing array of that name).
            array: values (any shape; copied).
            bits: resolution each value is held at.
            crossing: ``"dac"`` (values to be converted by DACs), ``"adc"`` (values read
                from ADCs) or None (digital data); counts one conversion per value.

        Raises:
            BufferOverflowError: the array does not fit (nothing is changed).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"buffer entry name must be a non-empty string, got {name!r}")
        bits = _bits_arg(bits, f"buffer entry {name!r}")
        if crossing not in CROSSINGS:
            raise ValueError(f"crossing must be one of {CROSSINGS}, got {crossing!r}")
        arr = np.array(array, copy=True)
        entry = _Entry(arr, bits, crossing)
        old = self._entries.get(name)
        base = self.occupancy_bits - (old.size_bits if old is not None else 0)
        if base + entry.size_bits > self.capacity_bits:
            held = ", ".join(
                f"{k!r} {e.size_bits} bits" for k, e in self._entries.items()
            ) or "nothing"
            raise BufferOverflowError(
                f"buffer overflow storing {name!r}: {arr.size} values of shape {arr.shape} at "
                f"{bits} bits = {entry.size_bits} bits, but the buffer holds "
                f"{self.occupancy_bits} of {self.capacity_bits} bits "
                f"({self.capacity_bits - base} bits free for it; held: {held})"
            )
        self._entries[name] = entry
        self.occupancy_bits = base + entry.size_bits
        self.peak_bits = max(self.peak_bits, self.occupancy_bits)
        self.bits_stored += entry.size_bits
        self.stores += 1
        if crossing == "dac":
            self.dac_conversions += int(arr.size)
        elif crossing == "adc":
            self.adc_conversions += int(arr.size)

    def _get(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"buffer holds no entry {name!r} (entries: {sorted(self._entries)})"
            ) from None

    def load(self, name: str) -> np.ndarray:
        """A copy of the array stored under ``name`` (KeyError if absent)."""
        return self._get(name).array.copy()

    def free(self, name: str) -> None:
        """Release ``name`` (KeyError if absent)."""
        entry = self._get(name)
        del self._entries[name]
        self.occupancy_bits -= entry.size_bits

    def reset_peak(self) -> None:
        """Restart peak tracking from the current occupancy (e.g. at the start of an
        epoch, to report the peak of that epoch)."""
        self.peak_bits = self.occupancy_bits

    def clear(self) -> None:
        """Release every entry (counters are kept)."""
        self._entries.clear()
        self.occupancy_bits = 0

    def stats(self) -> dict:
        """Counters: capacity, occupancy and peak occupancy (bits), cumulative bits stored,
        number of stores, DAC and ADC conversions, and the bits of every held entry."""
        return {
            "capacity_bits": self.capacity_bits,
            "occupancy_bits": self.occupancy_bits,
            "peak_bits": self.peak_bits,
            "bits_stored": self.bits_stored,
            "stores": self.stores,
            "dac_conversions": self.dac_conversions,
            "adc_conversions": self.adc_conversions,
            "entries": {k: e.size_bits for k, e in self._entries.items()},
        }

    def __repr__(self) -> str:
        return (
            f"Buffer({self.occupancy_bits}/{self.capacity_bits} bits, "
            f"{len(self._entries)} entries, peak {self.peak_bits})"
        )


class EPBlock(Protocol):
    """What :func:`ep_buffer_requirement_bits` needs of a block: its device count, input
    source names and number of outputs (:class:`analogeq.blocks.ResistiveBlock` has them)."""

    n_out: int
    input_sources: list[str]

    def num_devices(self) -> int:
        """Number of trainable conductances."""
        ...


def ep_buffer_requirement_bits(block: EPBlock, batch_size: int, bits: int) -> int:
    """Bits needed to hold a block's EP measurements for a batch until the nudged phases
    finish: per sample, the voltage across every trainable device
    (``block.num_devices()``), the current of every input source (``2 n_in``) and the
    ``n_out`` outputs, each at ``bits`` bits.

    (With centered EP these are the measurements of the first nudged phase plus the free
    outputs; with one-sided EP they are the free phase's: the same count.)
    """
    bits = _bits_arg(bits, "ep_buffer_requirement_bits")
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    per_sample = block.num_devices() + len(block.input_sources) + block.n_out
    return int(batch_size) * per_sample * bits
