"""``example-board``: a device profile, to show the contract. Its figures are the plugin's own
assumptions (each says how it was derived): replace them with your board's."""

from __future__ import annotations

from edge_opt.analysis.device_profiles import Figure, HardwareProfile

PROFILE = HardwareProfile(
    name="example-board",
    description="An example board: 4x Cortex-A55 @ 1.8 GHz, LPDDR4X (example plugin)",
    memory_bandwidth_gbps=Figure(8.5, "assumed", "LPDDR4X-2133 x 32 bit, as specified"),
    peak_gmacs={
        "fp32": Figure(28.8, "assumed", "4 cores x 1.8 GHz x 4 fp32 MAC/cycle (NEON FMA)"),
        "fp16": Figure(57.6, "assumed", "ARMv8.2 FP16: twice the fp32 lanes"),
        "bf16": Figure(float("nan"), "unknown", "no bf16 arithmetic on the A55"),
        "int8": Figure(115.2, "assumed", "ARMv8.2 dot product (SDOT): 4x the fp32 MACs"),
    },
    l1d_kib=Figure(32, "assumed"),
    l2_kib=Figure(64, "assumed", "per core"),
    l3_kib=Figure(512, "assumed", "shared"),
    active_power_watts=Figure(4.0, "assumed", "a typical small board under load"),
    idle_power_watts=Figure(1.2, "assumed"),
)
