"""GPU readings for an Ollama box from a Prometheus exporter (DCGM or nvidia_gpu_exporter).

Only what the console needs: utilisation (%), framebuffer used and total (bytes). Several GPUs
on one box are summed for memory and averaged for utilisation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEnNaIf]+)")
_MIB = 1024 * 1024

# metric name -> (what, multiplier to the unit we keep)
_METRICS = {
    "DCGM_FI_DEV_GPU_UTIL": ("util", 1.0),  # percent
    "DCGM_FI_DEV_FB_USED": ("used", _MIB),  # MiB
    "DCGM_FI_DEV_FB_FREE": ("free", _MIB),  # MiB
    "DCGM_FI_DEV_FB_TOTAL": ("total", _MIB),  # MiB (newer DCGM)
    "nvidia_smi_utilization_gpu_ratio": ("util", 100.0),
    "nvidia_smi_memory_used_bytes": ("used", 1.0),
    "nvidia_smi_memory_free_bytes": ("free", 1.0),
    "nvidia_smi_memory_total_bytes": ("total", 1.0),
}


@dataclass(frozen=True, slots=True)
class GpuReading:
    util_percent: float | None
    used_bytes: int | None
    total_bytes: int | None


def parse_gpu_metrics(text: str) -> GpuReading:
    values: dict[str, list[float]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None or match.group(1) not in _METRICS:
            continue
        what, scale = _METRICS[match.group(1)]
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        if value == value:  # not NaN
            values.setdefault(what, []).append(value * scale)
    util = values.get("util")
    used = sum(values["used"]) if "used" in values else None
    total = sum(values["total"]) if "total" in values else None
    if total is None and used is not None and "free" in values:
        total = used + sum(values["free"])
    return GpuReading(
        util_percent=sum(util) / len(util) if util else None,
        used_bytes=int(used) if used is not None else None,
        total_bytes=int(total) if total is not None else None,
    )
