"""DAC/ADC quantiser models at the digital/analog boundary.

Quantisation grid
-----------------
With ``bits = b`` a converter has ``L = 2**b`` levels *including both range
endpoints*::

    level_k = v_min + k * LSB,   k = 0 .. L-1,   LSB = (v_max - v_min) / (2**b - 1)

and rounds to the nearest level (ties to even, :func:`numpy.rint`).  For a
range symmetric about 0 there is no level at 0 (a *mid-rise* characteristic);
for ``[0, v_max]`` (unipolar) 0 is a level.  The RMS error of a signal spread
uniformly over the range is ``LSB / sqrt(12)`` (:func:`quantization_rms_error`).
``bits=None`` is an ideal converter: no quantisation (clipping still applies).

Clipping and gradient
---------------------
With ``clip=True`` values are saturated to ``[v_min, v_max]``; with
``clip=False`` values outside the range are rounded on the same (extended)
grid.  :meth:`Converter.backward` is the straight-through estimator
``dx = dq * mask``, where ``mask`` is 1 where the (noisy, for the ADC) input
lay inside ``[v_min, v_max]`` (inclusive) and 0 where it was clipped.  With
``clip=False`` the mask is all ones.

Noise
-----
``noise_lsb`` is a Gaussian noise standard deviation in LSB (``sigma =
noise_lsb * LSB`` volts; it requires ``bits``); ``noise_V`` states the same
standard deviation directly in volts (also for an ideal converter). At most one
of the two may be non-zero (:attr:`ConverterParams.noise_sigma_V`). Noise needs
an explicit :class:`numpy.random.Generator` (passed to ``forward`` or the
constructor), else :class:`ValueError`.

* :class:`DAC` adds the noise to its *output*, after quantisation and
  clipping (analog output noise; values may leave the range by the noise).
* :class:`ADC` adds it at its *input*, before clipping and quantisation
  (input-referred comparator/thermal noise); for ``noise_lsb >~ 1`` the
  output error is then ``~ sqrt(sigma**2 + LSB**2 / 12)``.

Calibration
-----------
``calibrate(x, method="maxabs" | "minmax" | "percentile")`` sets the range from
data and freezes it (a second call raises unless ``force=True``).  With
``ConverterParams(calibrate=True)`` this happens automatically on the first
``forward``.  The range lives in ``converter.params`` (a frozen dataclass that
is replaced, never mutated) and in ``state_dict()``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .layers import Layer

__all__ = ["ADC", "DAC", "Converter", "ConverterParams", "quantization_rms_error"]


@dataclass(frozen=True)
class ConverterParams:
    """Immutable converter description.

    Attributes:
        bits: Resolution ``b >= 1`` (``2**b`` levels), or ``None`` for an ideal converter.
        v_min: Lower end of the full-scale range (volts), included as a level.
        v_max: Upper end of the full-scale range (volts), ``> v_min``, included as a level.
        clip: Saturate inputs to ``[v_min, v_max]``.
        noise_lsb: Gaussian noise std in LSB (``>= 0``; needs ``bits``).
        noise_V: Gaussian noise std in volts (``>= 0``; not together with ``noise_lsb``).
        calibrate: Calibrate the range from the first batch seen by ``forward``.
        calib_method: ``"maxabs"`` (symmetric ``[-m, m]``, ``m = max|x|``),
            ``"minmax"`` (``[min x, max x]``) or ``"percentile"``.
        calib_percentile: For ``"percentile"``: symmetric range
            ``[-m, m]`` with ``m`` the given percentile of ``|x|`` (in ``(0, 100]``).
    """

    bits: int | None = 8
    v_min: float = -1.0
    v_max: float = 1.0
    clip: bool = True
    noise_lsb: float = 0.0
    calibrate: bool = False
    calib_method: str = "maxabs"
    calib_percentile: float = 99.9
    noise_V: float = 0.0

    def __post_init__(self) -> None:
        if self.bits is not None:
            if isinstance(self.bits, bool) or not isinstance(self.bits, (int, np.integer)):
                raise ValueError(f"bits must be an int >= 1 or None, got {self.bits!r}")
            if self.bits < 1:
                raise ValueError(f"bits must be >= 1, got {self.bits}")
        if not (math.isfinite(self.v_min) and math.isfinite(self.v_max)):
            raise ValueError(f"v_min/v_max must be finite, got {self.v_min}, {self.v_max}")
        if not self.v_max > self.v_min:
            raise ValueError(f"v_max must be > v_min, got v_min={self.v_min}, v_max={self.v_max}")
        if not self.noise_lsb >= 0:
            raise ValueError(f"noise_lsb must be >= 0, got {self.noise_lsb}")
        if self.noise_lsb > 0 and self.bits is None:
            raise ValueError("noise_lsb > 0 needs a finite number of bits (LSB is undefined)")
        if not (math.isfinite(self.noise_V) and self.noise_V >= 0):
            raise ValueError(f"noise_V must be finite and >= 0, got {self.noise_V}")
        if self.noise_V > 0 and self.noise_lsb > 0:
            raise ValueError("give the noise either in LSB (noise_lsb) or in volts (noise_V)")
        if self.calib_method not in ("maxabs", "minmax", "percentile"):
            raise ValueError(
                "calib_method must be 'maxabs', 'minmax' or 'percentile', "
                f"got {self.calib_method!r}"
            )
        if not 0 < self.calib_percentile <= 100:
            raise ValueError(f"calib_percentile must be in (0, 100], got {self.calib_percentile}")

    @property
    def levels(self) -> int | None:
        """Number of levels ``2**bits`` (``None`` if ideal)."""
        return None if self.bits is None else 2 ** int(self.bits)

    @property
    def noise_sigma_V(self) -> float:
        """Noise standard deviation in volts: ``noise_lsb * lsb`` or ``noise_V`` (0: none)."""
        if self.noise_lsb > 0:
            return self.noise_lsb * self.lsb
        return float(self.noise_V)

    @property
    def lsb(self) -> float | None:
        """Level spacing ``(v_max - v_min) / (2**bits - 1)`` in volts (``None`` if ideal)."""
        if self.bits is None:
            return None
        return (self.v_max - self.v_min) / (2 ** int(self.bits) - 1)


def quantization_rms_error(bits: int, v_range: float) -> float:
    """Theoretical RMS quantisation error ``LSB / sqrt(12)`` of a uniformly spread signal.

    Args:
        bits: Resolution ``b >= 1``.
        v_range: Full-scale range ``v_max - v_min`` (volts, > 0).

    Returns:
        ``v_range / (2**bits - 1) / sqrt(12)`` (same grid as :class:`ConverterParams`).
    """
    ConverterParams(bits=bits, v_min=0.0, v_max=float(v_range))  # validation
    return v_range / (2**bits - 1) / math.sqrt(12.0)


class Converter(Layer):
    """Common DAC/ADC machinery (a parameter-free :class:`~digital.layers.Layer`).

    Args:
        params: A :class:`ConverterParams` (default: 8 bits over ``[-1, 1]``).
        rng: Default generator for noise; ``forward(x, rng=...)`` overrides it.
        **overrides: Field overrides, e.g. ``DAC(bits=4, v_min=0.0, v_max=1.0)``.
    """

    _noise_at_input = False

    def __init__(
        self,
        params: ConverterParams | None = None,
        *,
        rng: np.random.Generator | None = None,
        **overrides: object,
    ) -> None:
        super().__init__()
        p = params if params is not None else ConverterParams()
        self._config: ConverterParams = dataclasses.replace(p, **overrides) if overrides else p
        self.rng = rng
        self.calibrated = False

    # ``params`` (trainable arrays) must stay an empty dict for the Layer
    # interface, so the converter description is exposed as ``config``.
    @property
    def config(self) -> ConverterParams:
        """The current (frozen) :class:`ConverterParams`."""
        return self._config

    @property
    def lsb(self) -> float | None:
        """LSB in volts (``None`` if ideal)."""
        return self._config.lsb

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Noise-free, clip-free rounding of ``x`` to the grid (identity if ideal)."""
        p = self._config
        if p.bits is None:
            return np.array(x, copy=True)
        lsb = p.lsb
        return p.v_min + np.rint((x - p.v_min) / lsb) * lsb

    def _noise(self, shape: tuple[int, ...], rng: np.random.Generator | None) -> np.ndarray | None:
        p = self._config
        sigma = p.noise_sigma_V
        if sigma == 0:
            return None
        rng = rng if rng is not None else self.rng
        if rng is None:
            raise ValueError(
                f"{type(self).__name__} has noise ({sigma:g} V rms) but no rng was given; "
                "pass rng=np.random.default_rng(seed) to forward() or the constructor"
            )
        return rng.normal(0.0, sigma, size=shape)

    def forward(
        self, x: np.ndarray, rng: np.random.Generator | None = None, *, train: bool = True
    ) -> np.ndarray:
        """Convert ``x`` (any shape, volts) -> ``q`` (same shape); see module docs.

        ``train`` is accepted for :class:`~digital.layers.Sequential` compatibility
        and ignored.
        """
        x = np.asarray(x)
        if self._config.calibrate and not self.calibrated:
            self.calibrate(x)
        p = self._config
        v = x
        if self._noise_at_input:
            n = self._noise(x.shape, rng)
            if n is not None:
                v = x + n
        if p.clip:
            mask = (v >= p.v_min) & (v <= p.v_max)
            v = np.clip(v, p.v_min, p.v_max)
        else:
            mask = None
        q = self.quantize(v)
        if p.clip and p.bits is not None:
            np.clip(q, p.v_min, p.v_max, out=q)  # guard against round-off past the ends
        if not self._noise_at_input:
            n = self._noise(x.shape, rng)
            if n is not None:
                q = q + n
        self._cache = {"mask": mask}
        return q

    def __call__(  # type: ignore[override]
        self, x: np.ndarray, rng: np.random.Generator | None = None, *, train: bool = True
    ) -> np.ndarray:
        """Same as :meth:`forward`."""
        return self.forward(x, rng, train=train)

    @property
    def last_inside_range(self) -> np.ndarray | None:
        """Boolean mask of the last ``forward``'s values that fell inside
        ``[v_min, v_max]`` (after input noise); ``None`` before any forward or for a
        converter that does not clip."""
        return None if self._cache is None else self._cache["mask"]

    def backward(self, dq: np.ndarray) -> np.ndarray:
        """Straight-through estimator: ``dq`` inside the range, 0 where clipped."""
        mask = self._need_cache()["mask"]
        return dq.copy() if mask is None else dq * mask

    def calibrate(
        self,
        x: np.ndarray,
        method: str | None = None,
        percentile: float | None = None,
        *,
        force: bool = False,
    ) -> ConverterParams:
        """Set ``[v_min, v_max]`` from data and freeze it.

        Args:
            x: Representative data (any shape).
            method: ``"maxabs"``, ``"minmax"`` or ``"percentile"``; default from the params.
            percentile: For ``"percentile"``; default from the params.
            force: Allow re-calibrating an already calibrated converter.

        Returns:
            The new :class:`ConverterParams`.
        """
        if self.calibrated and not force:
            raise RuntimeError("converter range is frozen; pass force=True to recalibrate")
        p = self._config
        method = method or p.calib_method
        percentile = p.calib_percentile if percentile is None else percentile
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0 or not np.all(np.isfinite(x)):
            raise ValueError("calibration data must be non-empty and finite")
        if method == "maxabs":
            m = float(np.max(np.abs(x)))
            lo, hi = -m, m
        elif method == "percentile":
            m = float(np.percentile(np.abs(x), percentile))
            lo, hi = -m, m
        elif method == "minmax":
            lo, hi = float(x.min()), float(x.max())
        else:
            raise ValueError(f"unknown calibration method {method!r}")
        if not hi > lo:
            raise ValueError(f"calibration data give an empty range [{lo}, {hi}]")
        self._config = dataclasses.replace(
            p, v_min=lo, v_max=hi, calib_method=method, calib_percentile=percentile
        )
        self.calibrated = True
        return self._config

    def state_dict(self) -> dict[str, np.ndarray]:
        """``{"v_min", "v_max", "calibrated"}`` as 0-d arrays."""
        return {
            "v_min": np.array(self._config.v_min),
            "v_max": np.array(self._config.v_max),
            "calibrated": np.array(self.calibrated),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore the range and the calibrated flag from :meth:`state_dict`."""
        keys = {"v_min", "v_max", "calibrated"}
        if set(state) != keys:
            raise KeyError(f"converter state_dict needs keys {sorted(keys)}, got {sorted(state)}")
        self._config = dataclasses.replace(
            self._config, v_min=float(state["v_min"]), v_max=float(state["v_max"])
        )
        self.calibrated = bool(state["calibrated"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._config})"


class DAC(Converter):
    """Digital-to-analog converter: quantise, clip, then add output noise."""

    _noise_at_input = False


class ADC(Converter):
    """Analog-to-digital converter: add input-referred noise, clip, then quantise."""

    _noise_at_input = True
