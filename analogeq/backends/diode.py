"""The diode equations in NumPy, evaluated by the NumPy solver and by the post-solve checks
of every backend: ngspice's level-1 junction diode (docs/physics.md, "ngspice") and the
behavioural near-ideal clamp :class:`~analogeq.params.PWLDiodeModel` (a ``B`` source in
ngspice, the same expression here)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..params.device import DiodeModel, PWLDiodeModel

__all__ = [
    "diode_current",
    "pwl_diode_current",
    "diode_currents",
    "junction_arrays",
    "BehaviouralDiodes",
    "junction_step_limit",
    "junction_voltage_limit",
]

_E = math.e


def diode_current(
    vd_V: np.ndarray, is_A: np.ndarray, vte_V: np.ndarray, gmin_S: float
) -> tuple[np.ndarray, np.ndarray]:
    """ngspice's level-1 diode DC current and conductance (no series R, no breakdown).

    Args:
        vd_V: junction voltages (anode minus cathode), any shape broadcastable with the rest.
        is_A: saturation currents in amperes.
        vte_V: n * V_T in volts.
        gmin_S: junction shunt conductance in siemens.

    Returns:
        (current in amperes flowing anode -> cathode, small-signal conductance in siemens).
    """
    x = vd_V / vte_V
    forward = x >= -3.0
    ex = np.exp(np.minimum(x, 600.0))
    i_fwd = is_A * (ex - 1.0)
    g_fwd = is_A * ex / vte_V
    with np.errstate(divide="ignore", invalid="ignore"):
        vd_safe = np.where(forward, -1.0, vd_V)
        r = 3.0 * vte_V / (vd_safe * _E)
        arg = r * r * r  # not r ** 3: NumPy's float power is ~100x slower than two products
        i_rev = -is_A * (1.0 + arg)
        g_rev = is_A * 3.0 * arg / vd_safe
    i = np.where(forward, i_fwd, i_rev) + gmin_S * vd_V
    g = np.where(forward, g_fwd, g_rev) + gmin_S
    return i, g


def junction_step_limit(
    vd: np.ndarray, dvd: np.ndarray, vte: np.ndarray, is_A: np.ndarray
) -> np.ndarray:
    """(B,) factor in (0, 1] limiting forward junction-voltage jumps like SPICE's pnjlim.

    Args:
        vd: (B, D) junction voltages of the current Newton iterate, in volts.
        dvd: (B, D) their proposed Newton step, in volts.
        vte: (D,) ``N V_T`` per diode, in volts.
        is_A: (D,) saturation current per diode, in amperes.
    """
    vcrit = vte * np.log(vte / (math.sqrt(2.0) * is_A))
    excess = vd + dvd - np.maximum(vd, vcrit)
    big = (excess > 2 * vte) & (dvd > 0)
    if not big.any():
        return np.ones(vd.shape[0])
    allowed = np.maximum(vcrit - vd, 0.0) + vte * np.log1p(np.maximum(excess, 0) / vte)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(big, allowed / dvd, 1.0)
    return np.clip(ratio.min(axis=1), 1e-6, 1.0)


def junction_voltage_limit(
    vd: np.ndarray, dvd: np.ndarray, vte: np.ndarray, is_A: np.ndarray
) -> np.ndarray:
    """SPICE's pnjlim on each junction: the proposed change ``dvd`` of junction voltages
    ``vd`` (volts, any shape broadcastable with ``vte`` and ``is_A``), with a forward
    increase to above ``vcrit`` by more than ``2 N V_T`` cut to its logarithm
    (``vd + N V_T log(1 + dvd / N V_T)``, or ``N V_T log(v_new / N V_T)`` from
    ``vd <= 0``). Decreases pass unchanged. Used junction by junction, where a change of
    one junction does not move any other (:func:`junction_step_limit` scales a whole step
    instead)."""
    vcrit = vte * np.log(vte / (math.sqrt(2.0) * is_A))
    vnew = vd + dvd
    big = (vnew > vcrit) & (dvd > 2 * vte)
    if not big.any():
        return dvd
    with np.errstate(divide="ignore", invalid="ignore"):
        limited = np.where(vd > 0, vd + vte * np.log1p(np.maximum(dvd, 0.0) / vte),
                           vte * np.log(np.maximum(vnew, vcrit) / vte))
    return np.where(big, limited - vd, dvd)
def pwl_diode_current(
    vd_V: np.ndarray, g_on_S: np.ndarray, g_off_S: np.ndarray, v_on_V: np.ndarray,
    smooth_V: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Current and conductance of :class:`~analogeq.params.PWLDiodeModel`:
    ``I = g_off V + g_on w softplus((V - v_on) / w)``, ``dI/dV = g_off + g_on
    sigmoid((V - v_on) / w)``, with softplus written as ``max(x, 0) + ln(1 + exp(-|x|))``
    as in the ngspice ``B`` source (no overflow for any V)."""
    x = (vd_V - v_on_V) / smooth_V
    e = np.exp(-np.abs(x))
    soft = np.maximum(x, 0.0) + np.log1p(e)
    sig = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return g_off_S * vd_V + g_on_S * smooth_V * soft, g_off_S + g_on_S * sig


def junction_arrays(
    models: Sequence[DiodeModel | PWLDiodeModel], thermal_voltage_V: float
) -> tuple[np.ndarray, np.ndarray]:
    """(IS, N V_T) per diode for :func:`diode_current`; behavioural diodes get the
    placeholders 1e-12 A and V_T (their columns are replaced by
    :meth:`BehaviouralDiodes.apply`)."""
    is_a = np.array([m.is_A if isinstance(m, DiodeModel) else 1e-12 for m in models])
    vte = np.array([m.n * thermal_voltage_V if isinstance(m, DiodeModel) else thermal_voltage_V
                    for m in models])
    return is_a, vte


@dataclass(frozen=True)
class BehaviouralDiodes:
    """The behavioural (PWL) diodes among a circuit's diodes: their column ``index`` in the
    per-diode arrays and their parameters (each (P,))."""

    index: np.ndarray
    g_on_S: np.ndarray
    g_off_S: np.ndarray
    v_on_V: np.ndarray
    smooth_V: np.ndarray

    @classmethod
    def of(cls, models: Sequence[DiodeModel | PWLDiodeModel]) -> BehaviouralDiodes | None:
        """The behavioural diodes of per-diode ``models``; None if there are none."""
        idx = [k for k, m in enumerate(models) if isinstance(m, PWLDiodeModel)]
        if not idx:
            return None
        ms = [models[k] for k in idx]
        return cls(np.array(idx, dtype=np.intp), *(np.array([getattr(m, f) for m in ms])
                   for f in ("g_on_S", "g_off_S", "v_on_V", "smooth_V")))

    def apply(self, vd: np.ndarray, i: np.ndarray, g: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """Replace the behavioural diodes' columns of (B, D) currents ``i`` and
        conductances ``g`` (in place) by :func:`pwl_diode_current` of ``vd``."""
        i[:, self.index], g[:, self.index] = pwl_diode_current(
            vd[:, self.index], self.g_on_S, self.g_off_S, self.v_on_V, self.smooth_V)
        return i, g

    def subset(self, diodes: np.ndarray) -> BehaviouralDiodes | None:
        """The behavioural diodes among ``diodes`` (indices into the per-diode arrays),
        their ``index`` counted within ``diodes``; None if there are none."""
        diodes = np.asarray(diodes, dtype=np.intp)
        at = np.flatnonzero(np.isin(diodes, self.index))
        if not at.size:
            return None
        p = np.searchsorted(self.index, diodes[at])  # index is ascending
        return BehaviouralDiodes(at.astype(np.intp), self.g_on_S[p], self.g_off_S[p],
                                 self.v_on_V[p], self.smooth_V[p])

    def keep_steps(self, dvd: np.ndarray, limited: np.ndarray) -> np.ndarray:
        """``limited`` (B, D) junction-voltage steps (from :func:`junction_voltage_limit`
        of ``dvd``) with the behavioural diodes' columns reset to their unlimited ``dvd``:
        pnjlim applies to exponential junctions only."""
        if limited is dvd:
            return limited
        out = np.array(limited, dtype=np.float64)
        out[:, self.index] = np.asarray(dvd)[:, self.index]
        return out

    def unlimited(self, dvd: np.ndarray) -> np.ndarray:
        """A copy of (B, D) junction-voltage steps with the behavioural diodes' steps
        zeroed: :func:`junction_step_limit` limits exponential junctions only."""
        out = np.array(dvd, dtype=np.float64)
        out[:, self.index] = 0.0
        return out


def diode_currents(
    vd_V: np.ndarray, models: Sequence[DiodeModel | PWLDiodeModel], thermal_voltage_V: float,
    gmin_S: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(B, D) current and conductance of diodes with per-diode ``models`` (junction diodes
    with the ``gmin`` shunt, behavioural ones without) at junction voltages ``vd_V``."""
    vd = np.asarray(vd_V, dtype=np.float64)
    is_a, vte = junction_arrays(models, thermal_voltage_V)
    i, g = diode_current(vd, is_a, vte, gmin_S)
    pwl = BehaviouralDiodes.of(models)
    if pwl is not None:
        i, g = pwl.apply(vd, np.array(i), np.array(g))
    return i, g
