"""Measurement: complexity (fvcore MACs + FlopCounterMode FLOPs), latency/throughput, device peak."""
from .complexity import profile_complexity
from .latency import measure_latency, measure_latency_isolated, summarize_times
from .peak import device_peak_flops, peak_memory_bytes, reset_peak_memory, training_cost

__all__ = [
    "profile_complexity",
    "measure_latency",
    "measure_latency_isolated",
    "summarize_times",
    "device_peak_flops",
    "peak_memory_bytes",
    "reset_peak_memory",
    "training_cost",
]
