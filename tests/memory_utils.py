"""Peak CPU memory of a call, from torch.profiler's allocation events (torch has no
max_memory_allocated for the CPU): every allocation and free of the CPU allocator inside the call,
in time order, summed. Tensors alive before the call are not counted; those freed inside it count
negatively."""

from __future__ import annotations

import pytest


def peak_allocated(fn):
    """(fn's result, peak bytes allocated during fn above the bytes live when it started)."""
    try:
        from torch._C._profiler import _EventType
        from torch.profiler import ProfilerActivity, profile
    except ImportError:  # pragma: no cover - private profiler API moved
        pytest.skip("torch.profiler allocation events unavailable")
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        e = stack.pop()
        stack.extend(e.children)
        if e.typed[0] == _EventType.Allocation:
            events.append((e.start_time_ns, e.typed[1].id, e.typed[1].alloc_size))
    events.sort()
    live = peak = 0
    for _, _, size in events:
        live += size
        peak = max(peak, live)
    return result, peak
