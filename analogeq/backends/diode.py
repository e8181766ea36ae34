"""ngspice's level-1 junction diode in NumPy: the device equation both the NumPy solver and
the post-solve checks of every backend evaluate (docs/physics.md, "ngspice")."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["diode_current", "junction_step_limit", "junction_voltage_limit"]

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
