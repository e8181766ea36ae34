"""Pure-NumPy digital layer for hybrid digital/analog networks.

Explicit forward/backward (CS231n style), float64 by default, no global state:
randomness only through an explicit :class:`numpy.random.Generator`.

Submodules: :mod:`digital.functional` (pure ``*_forward``/``*_backward`` pairs),
:mod:`digital.layers` (stateful layers and :class:`Sequential`),
:mod:`digital.losses`, :mod:`digital.optim`, :mod:`digital.init`,
:mod:`digital.converters` (DAC/ADC quantisers).
"""

from . import converters, functional, init, layers, losses, optim
from .converters import ADC, DAC, Converter, ConverterParams, quantization_rms_error
from .layers import (
    Activation,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Flatten,
    GainOffset,
    HardTanh,
    Identity,
    Layer,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)
from .losses import accuracy, log_softmax, mse_loss, softmax_cross_entropy
from .optim import SGD, Adam, ConstantLR, CosineLR, Optimizer, Schedule, StepLR, WarmupCosine

__all__ = [
    "ADC",
    "DAC",
    "SGD",
    "Activation",
    "Adam",
    "AvgPool2d",
    "BatchNorm",
    "ConstantLR",
    "Conv2d",
    "Converter",
    "ConverterParams",
    "CosineLR",
    "Flatten",
    "GainOffset",
    "HardTanh",
    "Identity",
    "Layer",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "Optimizer",
    "ReLU",
    "Schedule",
    "Sequential",
    "Sigmoid",
    "StepLR",
    "Tanh",
    "WarmupCosine",
    "accuracy",
    "converters",
    "functional",
    "init",
    "layers",
    "log_softmax",
    "losses",
    "mse_loss",
    "optim",
    "quantization_rms_error",
    "softmax_cross_entropy",
]
