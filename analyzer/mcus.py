"""Measured int8 CNN compute rates of microcontrollers, to turn a trace's MACs into time.

A planner trace records each operator's MACs; its compute time is known only when the trace
was planned with a MAC rate or recorded on a device. The slowdown of swapping (I/O against
compute) needs that time, so `flashswap lifetime` fills it in from one of these rates.

Every rate comes from a published MLPerf Tiny inference result (image classification, the
int8 ResNet of CIFAR-10; median throughput over the benchmark's windows) times that model's
MAC count. The count, 12,501,632 MACs, is what the planner counts on the same model
(traces/resnet8_*.bin, `macs_per_inference`) and what SiliconLabs/mltk's summary of the
model states ("Total MACs: 12.502 M", mltk/models/tinyml/image_classification.py). A rate
measured on a whole network includes its adds, pooling and softmax: an effective rate, not a
kernel peak. Rates scale with the clock and differ between networks and inference engines
(X-CUBE-AI, CMSIS-NN, TFLite Micro); `--macs-per-s` overrides them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from flashswap.errors import InputError

# MACs of the MLPerf Tiny image-classification ResNet (see the module doc).
MLPERF_TINY_IC_MACS = 12_501_632


@dataclass(frozen=True)
class Mcu:
    """A measured inference rate: core, clock, inference engine and where it was published."""

    name: str
    core: str
    mhz: int
    engine: str
    inferences_per_s: float  # MLPerf Tiny image classification, median throughput
    source: str

    @property
    def macs_per_s(self) -> float:
        return self.inferences_per_s * MLPERF_TINY_IC_MACS

    def describe(self) -> str:
        return (f"{self.macs_per_s / 1e6:.1f} M MAC/s ({self.core} at {self.mhz} MHz, "
                f"{self.engine}; {self.source.split(':')[0]})")


_TINY_V1 = "MLPerf Tiny v1.0: mlcommons/tiny_results_v1.0"
MCUS: tuple[Mcu, ...] = (
    Mcu("cortex-m4-120mhz-xcube-ai", "Cortex-M4", 120, "X-CUBE-AI 7.3.0", 4.407,
        f"{_TINY_V1} closed/STMicroelectronics/results/NUCLEO_L4R5ZI/ic/performance"),
    Mcu("cortex-m4-120mhz-cmsis-nn", "Cortex-M4", 120, "microTVM + CMSIS-NN", 2.567,
        f"{_TINY_V1} closed/OctoML/results/microtvm_cmsis_nn/NUCLEO_L4R5ZI/ic/performance"),
    Mcu("cortex-m4-120mhz-tflm", "Cortex-M4", 120, "TFLite Micro 2.3.1", 1.420,
        "MLPerf Tiny v0.5: mlcommons/tiny_results_v0.5 closed/reference/results/"
        "Nucleo-L4R5ZI/ic/performance"),
    Mcu("cortex-m7-280mhz-xcube-ai", "Cortex-M7", 280, "X-CUBE-AI 7.3.0", 18.401,
        f"{_TINY_V1} closed/STMicroelectronics/results/NUCLEO-H7A3ZI-Q/ic/performance"),
)
# The Cortex-M4 the firmware is tested on, with the fastest published M4 engine: the faster
# the compute, the larger the share of time swapping takes (the cautious default).
DEFAULT_MCU = "cortex-m4-120mhz-xcube-ai"


def get_mcu(name: str) -> Mcu:
    """The rate named `name` (case-insensitive); unknown names list the closest ones."""
    by = {m.name: m for m in MCUS}
    if name.lower() in by:
        return by[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(by), n=3, cutoff=0.3)
    names = ", ".join(close or by)
    raise InputError(f"unknown MCU {name!r} ({'closest' if close else 'choose from'}: {names})")
