"""Measured int8 CNN compute rates of microcontrollers, to turn a trace's MACs into time.

A planner trace records each operator's MACs; its compute time is known only when the trace
was planned with a MAC rate or recorded on a device. The slowdown of swapping (I/O against
compute) needs that time, so `flashswap lifetime` fills it in from one of these rates, and the
planner prices recomputed MACs at `DEFAULT_MCU`'s `macs_per_s` (the ResNet-8 rate) unless
given another. This table is flashswap core's; analyzer/mcus.py re-exports it.

Every rate comes from a published MLPerf Tiny inference result (median throughput over the
benchmark's windows) times that benchmark model's MAC count. The rate depends on the
operator mix, so each MCU has one rate per benchmark *family*, and a trace takes the family
nearest to its model (`family_of`, by the model's name in the trace metadata; the trace
does not record operator types):

- `ic`: image classification, ResNet-8 on CIFAR-10, standard convolutions: 12,501,632 MACs
  (what the planner counts on the same model, traces/resnet8_*.bin, and SiliconLabs/mltk's
  summary, "Total MACs: 12.502 M", mltk/models/tinyml/image_classification.py);
- `vww`: visual wake words, MobileNetV1 0.25 at 96x96, depthwise-separable convolutions:
  7.490 M MACs (mltk/models/tinyml/visual_wake_words.py, "Total MACs: 7.490 M");
- `kws`: keyword spotting, DS-CNN, depthwise-separable convolutions on audio features:
  2.657 M MACs (mltk keyword_spotting.py, "Total MACs: 2.657 M");
- `ad`: anomaly detection, a fully connected autoencoder: 264,192 MACs (mltk
  anomaly_detection.py, "Total MACs: 264.192 k").

A rate measured on a whole network includes its adds, pooling and softmax: an effective rate,
not a kernel peak. Rates scale with the clock and differ between inference engines
(X-CUBE-AI, CMSIS-NN, TFLite Micro); `--macs-per-s` overrides them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flashswap.errors import InputError


@dataclass(frozen=True)
class Family:
    """An MLPerf Tiny benchmark model: what it stands for and its MAC count."""

    name: str
    benchmark: str
    model: str
    operators: str
    macs: int


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("ic", "image classification", "ResNet-8", "standard convolutions", 12_501_632),
    Family("vww", "visual wake words", "MobileNetV1 0.25", "depthwise-separable convolutions",
           7_490_000),
    Family("kws", "keyword spotting", "DS-CNN", "depthwise-separable convolutions (audio)",
           2_657_000),
    Family("ad", "anomaly detection", "FC autoencoder", "fully connected layers", 264_192),
)}
DEFAULT_FAMILY = "ic"

# model name (trace metadata "model") -> family; the first pattern that matches wins
_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"ds[_-]?cnn|kws|keyword", "kws"),
    (r"mobilenet|shufflenet|mnasnet|efficientnet|vww|visual[_-]?wake", "vww"),
    (r"autoencoder|anomaly|fc[_-]?ae|\bmlp\b", "ad"),
)


@dataclass(frozen=True)
class Mcu:
    """Measured inference rates of one core, clock and inference engine, per family."""

    name: str
    core: str
    mhz: int
    engine: str
    inferences_per_s: Mapping[str, float]  # family -> MLPerf Tiny median throughput
    source: str  # result directory; "<family>" stands for ic, vww, kws or ad

    def rate(self, family: str = DEFAULT_FAMILY) -> float:
        """MAC/s on the family's benchmark model."""
        return self.inferences_per_s[family] * FAMILIES[family].macs

    @property
    def macs_per_s(self) -> float:
        """MAC/s of standard convolutions (ResNet-8): the rate when the family is unknown."""
        return self.rate(DEFAULT_FAMILY)

    def describe(self, family: str = DEFAULT_FAMILY) -> str:
        f = FAMILIES[family]
        return (f"{self.rate(family) / 1e6:.1f} M MAC/s ({self.core} at {self.mhz} MHz, "
                f"{self.engine}; {self.source.split(':')[0]} {f.benchmark}, {f.model})")

    def source_of(self, family: str) -> str:
        return self.source.replace("<family>", family)


_TINY_V1 = "MLPerf Tiny v1.0: mlcommons/tiny_results_v1.0"
MCUS: tuple[Mcu, ...] = (
    Mcu("cortex-m4-120mhz-xcube-ai", "Cortex-M4", 120, "X-CUBE-AI 7.3.0",
        {"ic": 4.407, "vww": 4.339, "kws": 13.323, "ad": 131.950},
        f"{_TINY_V1} closed/STMicroelectronics/results/NUCLEO_L4R5ZI/<family>/performance"),
    Mcu("cortex-m4-120mhz-cmsis-nn", "Cortex-M4", 120, "microTVM + CMSIS-NN",
        {"ic": 2.567, "vww": 3.320, "kws": 10.019, "ad": 116.212},
        f"{_TINY_V1} closed/OctoML/results/microtvm_cmsis_nn/NUCLEO_L4R5ZI/<family>/"
        "performance"),
    Mcu("cortex-m4-120mhz-tflm", "Cortex-M4", 120, "TFLite Micro 2.3.1",
        {"ic": 1.420, "vww": 1.665, "kws": 5.497, "ad": 99.487},
        "MLPerf Tiny v0.5: mlcommons/tiny_results_v0.5 closed/reference/results/"
        "Nucleo-L4R5ZI/<family>/performance"),
    Mcu("cortex-m7-280mhz-xcube-ai", "Cortex-M7", 280, "X-CUBE-AI 7.3.0",
        {"ic": 18.401, "vww": 19.722, "kws": 59.667, "ad": 547.705},
        f"{_TINY_V1} closed/STMicroelectronics/results/NUCLEO-H7A3ZI-Q/<family>/performance"),
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


def family_of(metadata: Mapping[str, Any], choice: str = "auto") -> tuple[str, str]:
    """The benchmark family whose measured rate times this trace's MACs, and why: `choice`
    names one, or "auto" matches the trace's model name (standard convolutions, ResNet-8's
    family, when nothing matches)."""
    if choice != "auto":
        if choice not in FAMILIES:
            raise InputError(f"unknown model family {choice!r} (choose from auto, "
                             f"{', '.join(FAMILIES)})")
        return choice, "--family"
    model = str(metadata.get("model") or "")
    for pattern, fam in _PATTERNS:
        if re.search(pattern, model, re.IGNORECASE):
            return fam, f"nearest measured family to {model} ({FAMILIES[fam].operators})"
    why = f"{model}: " if model else ""
    return DEFAULT_FAMILY, (f"{why}no depthwise-separable or fully connected model recognised: "
                            f"{FAMILIES[DEFAULT_FAMILY].operators}")
