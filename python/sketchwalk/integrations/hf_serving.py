"""Sketch&Walk inside transformers' continuous batching (``model.generate_batch``, the
continuous-batching manager): many requests of different lengths in one forward, prefill
chunks and decode steps mixed, requests arriving and leaving.

    import sketchwalk
    from sketchwalk.integrations import hf_serving

    cb_config = hf_serving.enable(model, sketchwalk.SketchWalkConfig())
    outputs = model.generate_batch(prompts, continuous_batching_config=cb_config)

How it is wired (transformers 5.17 to 5.25; what each piece relies on):

- **The attention function** is the package's ("sketchwalk", integrations/hf.py), which hands a
  call carrying ``cu_seq_lens_q`` (the packed varlen batch of continuous batching) to
  ``cb_attention`` here. In 5.25 the keys and values it receives are each request's whole cache
  gathered and packed (``cu_seq_lens_k``); in 5.17 it receives the new tokens and the cache,
  and writes them itself (``cache.update``), as transformers' own paged functions do. The step
  runs as one ragged step (ragged.sketchwalk_attention_varlen over a StepPlan of the rows'
  lengths): prefill, prefill chunk and decode rows in one call per layer.
- **The name check.** transformers 5.25 serves only "paged|eager", "sdpa" and names containing
  "flash" (ContinuousBatchingManager.switch_to_cb_friendly_attn) and has no registry for others;
  the two non-flash names make it allocate a dense [batch tokens x cache tokens] mask, which is
  what long contexts cannot afford, and a "flash" name would promise flash-attn's calling
  convention (block tables, kernel-side cache writes) that we do not implement. So ``enable``
  wraps that one check to accept "sketchwalk" and leaves every other name to transformers.
  In 5.17 the check switches unknown names to a flash implementation when one is installed;
  the same wrap keeps "sketchwalk". This is the one private method we touch; a test fails
  when a transformers release renames it.
- **The requests.** The attention function sees no request ids. A scheduler (transformers'
  FIFO scheduler, registered here as ``scheduler_type="sketchwalk"``) records each batch's
  request ids in row order when it schedules the batch, and frees a request's
  SketchWalkState when the request finishes, fails or is cancelled. A row whose queries are
  all its keys (nothing cached before) starts a fresh state.
- **One manager at a time per process**: the scheduler names the session of the forward that
  follows it; two managers running at once in one process would interleave their batches.
- **Bad requests**: the scheduler fails an empty prompt, or one longer than the whole cache,
  with a ValueError delivered as that request's result; the others keep being served.
- **What it turns off** (``serving_config``): CUDA graphs and asynchronous batching (the step
  runs Python per forward and the next batch must not be scheduled before this one ran) and
  prefix sharing between requests (a request must start from its own first token: its
  selection state covers every key).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

ATTN_IMPLEMENTATION = "sketchwalk"  # the same name as integrations/hf.py: one registration
SCHEDULER_TYPE = "sketchwalk"

__all__ = [
    "SCHEDULER_TYPE",
    "active_requests",
    "cb_attention",
    "check_model_dtype",
    "density_log",
    "enable",
    "record_densities",
    "serving_config",
]


class _Session:
    """The per-request selection states of one continuous-batching manager, and the rows of
    the batch being run (set by the scheduler before each forward)."""

    def __init__(self) -> None:
        self.states: dict[str, Any] = {}  # request id -> SketchWalkState
        self.batch_ids: list[str] | None = None
        self.lengths: list[tuple[int, int]] | None = None
        self.plan = None  # the StepPlan of the running forward, built by its first layer
        self.plan_states: list | None = None
        self.last_layer = -1
        # density_log(): when a list (record_densities()), one (phase, causal area, [kept
        # fraction of each sparse layer, 0-dim device tensors]) per request and forward,
        # appended after the forward's last layer; read (and synchronized) only by its reader.
        self.densities: list | None = [] if _RECORD_DENSITIES[0] else None
        # The decode sequences' 4-bit keys, kept stacked between steps (decode_pool.py); None:
        # stacked anew in every layer and step (enable(decode_pool=False), for comparison).
        from ..decode_pool import Keys4DecodePool

        self.decode_pool = Keys4DecodePool() if _DECODE_POOL[0] else None

    def begin_batch(self, request_ids: list[str], lengths: list[tuple[int, int]] | None) -> None:
        """The rows of the next forward: their request ids and, when the engine's request
        objects say them, (queries, keys) per row on the host (no device read needed)."""
        self.batch_ids = list(request_ids)
        self.lengths = lengths
        self.plan, self.plan_states, self.last_layer = None, None, -1

    def free(self, request_id: str) -> None:
        if self.states.pop(request_id, None) is not None and self.decode_pool is not None:
            self.decode_pool.release()  # its rows are not kept past the request


_CURRENT: list[_Session | None] = [None]  # the session whose batch runs now
_RECORD_DENSITIES = [False]  # record_densities()
_DECODE_POOL = [True]  # enable(decode_pool=...)


def record_densities(on: bool = True) -> None:
    """Make the managers started from now on record the density each request's rows actually
    achieved (density_log()). Off by default: a record is kept per request and forward."""
    _RECORD_DENSITIES[0] = on


def density_log() -> list:
    """The running (or last) manager's density records, one per request and forward, appended
    after the forward's last layer: (phase, causal area, [0-dim kept fraction of each sparse
    layer]), phase "prefill", "chunk" or "decode", area the rows' count of causal (query, key)
    pairs. Nothing is read from the device until the caller reads the tensors. Empty unless
    record_densities() was on when the manager started."""
    session = _CURRENT[0]
    return session.densities if session is not None and session.densities is not None else []


def active_requests() -> list[str]:
    """The request ids that hold a selection state now (tests: they must drain to none)."""
    session = _CURRENT[0]
    return sorted(session.states) if session is not None else []


def _scheduler_class():
    from transformers.generation.continuous_batching.scheduler import FIFOScheduler

    class SketchWalkScheduler(FIFOScheduler):
        """transformers' FIFO scheduler, telling the attention layers which request each row
        of a batch is, and dropping a request's selection state when it leaves."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.sketchwalk = _Session()
            _CURRENT[0] = self.sketchwalk

        def add_waiting_request(self, state, *args, **kwargs):
            # Raised here, the error fails this request alone (the engine delivers it as the
            # request's result) and the engine keeps serving the others; an empty prompt that
            # reached a forward stopped transformers 5.25's whole generation loop.
            _check_request(state, self.cache)
            return super().add_waiting_request(state, *args, **kwargs)

        def schedule_batch(self, *args, **kwargs):
            out = super().schedule_batch(*args, **kwargs)
            batch = out[0] if isinstance(out, tuple) else out  # 5.25: (requests, ...)
            if batch:
                self.sketchwalk.begin_batch(
                    [future.state.request_id for future in batch], _host_lengths(batch)
                )
                _CURRENT[0] = self.sketchwalk
            return out

        def finish_request(self, request_id, *args, **kwargs):
            self.sketchwalk.free(request_id)
            return super().finish_request(request_id, *args, **kwargs)

        def clear_cancelled_requests(self, *args, **kwargs):
            out = super().clear_cancelled_requests(*args, **kwargs)
            for state in out or ():
                self.sketchwalk.free(state.request_id)
            return out

    return SketchWalkScheduler


def _host_lengths(batch) -> list[tuple[int, int]] | None:
    """(queries, keys) per scheduled request from the engine's own counters (5.17 and 5.25:
    FutureRequestState.query_length, RequestState.position_offset = tokens already cached,
    advanced when the batch's inputs are prepared, after scheduling); None when absent."""
    try:
        return [
            (int(f.query_length), int(f.state.position_offset) + int(f.query_length)) for f in batch
        ]
    except (AttributeError, TypeError, ValueError):
        return None


def _check_request(state, cache) -> None:
    """Refuse a request the engine cannot serve: an empty prompt, or one whose prompt and new
    tokens cannot fit the whole cache (it would wait forever)."""
    prompt = getattr(state, "initial_tokens", None) or getattr(state, "prompt_ids", None) or []
    if len(prompt) == 0:
        raise ValueError(f"sketchwalk: request {state.request_id!r} has an empty prompt")
    if getattr(state, "num_children", 0):
        # The engine forks such a request after its prefill and hands the copies its cache,
        # past any scheduler hook: they would arrive with keys no selection state has seen.
        raise ValueError(
            f"sketchwalk: request {state.request_id!r} asks for several sequences "
            "(num_return_sequences > 1); continuous batching with Sketch&Walk serves one"
        )
    # Tokens the whole cache holds: max_tokens_read (5.25), else num_blocks x block_size (5.17).
    capacity = getattr(cache, "max_tokens_read", None) or (
        getattr(cache, "num_blocks", 0) * getattr(cache, "block_size", 0)
    )
    # The last generated token is never written to the cache.
    need = len(prompt) + max(0, (getattr(state, "max_new_tokens", None) or 0) - 1)
    if capacity and need > capacity:
        raise ValueError(
            f"sketchwalk: request {state.request_id!r} needs {need} cache tokens (prompt "
            f"{len(prompt)} + max_new_tokens), more than the whole cache holds ({capacity})"
        )


_PATCHED: list[bool] = [False]


def _install() -> None:
    """Registers the scheduler and lets "sketchwalk" through the continuous-batching name check
    (once per process; see the module docstring)."""
    if _PATCHED[0]:
        return
    from transformers.generation.continuous_batching import continuous_api, scheduler

    scheduler.SCHEDULER_MAPPING[SCHEDULER_TYPE] = _scheduler_class()
    manager = continuous_api.ContinuousBatchingManager
    check = getattr(manager, "switch_to_cb_friendly_attn", None)
    if check is None:
        raise RuntimeError(
            "sketchwalk: this transformers version has no "
            "ContinuousBatchingManager.switch_to_cb_friendly_attn; the continuous-batching "
            "integration knows 5.17 to 5.25 (integrations/hf_serving.py)"
        )

    def switch_to_cb_friendly_attn(self, model, *args, **kwargs):
        if model.config._attn_implementation == ATTN_IMPLEMENTATION:
            return None  # served as it is: cb_attention reads the packed batch
        return check(self, model, *args, **kwargs)

    switch_to_cb_friendly_attn.__wrapped__ = check
    manager.switch_to_cb_friendly_attn = switch_to_cb_friendly_attn
    _PATCHED[0] = True


def serving_config(**overrides):
    """A transformers ContinuousBatchingConfig for Sketch&Walk: its scheduler, no CUDA graphs,
    no asynchronous batching, no prefix sharing (module docstring); other fields as given."""
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    fields = {f.name for f in dataclasses.fields(ContinuousBatchingConfig)}
    settings = dict(
        scheduler_type=SCHEDULER_TYPE,
        use_cuda_graph=False,
        use_async_batching=False,
        allow_block_sharing=False,
    )
    if "auto_switch_to_flash" in fields:
        settings["auto_switch_to_flash"] = False
    settings.update(overrides)
    if "page_size" in settings and "page_size" not in fields and "block_size" in fields:
        settings["block_size"] = settings.pop("page_size")  # 5.17 names the page "block"
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ValueError(f"serving_config: ContinuousBatchingConfig has no field(s) {unknown}")
    if settings["scheduler_type"] != SCHEDULER_TYPE:
        raise ValueError(
            f"serving_config: scheduler_type must stay {SCHEDULER_TYPE!r} (it tells the "
            f"attention which request each row is), got {settings['scheduler_type']!r}"
        )
    for name in ("use_cuda_graph", "use_async_batching", "allow_block_sharing"):
        if settings[name]:
            raise ValueError(f"serving_config: {name} must be off for Sketch&Walk (module doc)")
    # Offloading hands a request back to the scheduler as finished and restores it later with its
    # cache (its selection state would be gone); compiling runs warm-up forwards with no batch.
    for name, off in (
        ("cpu_offload_space", 0),
        ("default_compile_level", 0),
        ("varlen_compile_config", None),
        ("decode_compile_config", None),
    ):
        if name in settings and settings[name] not in (off, None, 0.0):
            raise ValueError(
                f"serving_config: {name} must stay {off!r} for Sketch&Walk, got {settings[name]!r}"
            )
    return ContinuousBatchingConfig(**settings)


def enable(
    model, config=None, *, sparse_decode: bool = True, decode_pool: bool = True, **cb_overrides
):
    """Configure `model` for Sketch&Walk (integrations/hf.py's configure) and for continuous
    batching; returns the ContinuousBatchingConfig to pass to generate_batch /
    init_continuous_batching (serving_config(**cb_overrides)). decode_pool=False makes the
    managers started from now on stack the decode sequences' 4-bit keys anew in every layer
    and step instead of keeping them in a pool (decode_pool.py): the same selection, for
    measuring what the pool saves."""
    from . import hf

    if not sparse_decode:
        raise NotImplementedError(
            "hf_serving.enable: dense decode steps (sparse_decode=False) are not served by "
            "continuous batching yet"
        )
    text = hf.text_config(model)
    if getattr(text, "sliding_window", None) or "sliding_attention" in (
        getattr(text, "layer_types", None) or ()
    ):
        raise NotImplementedError(
            "hf_serving.enable: models with sliding-window layers are not supported"
        )
    check_model_dtype(model.device, model.dtype)
    cfg = hf.configure(model, config, sparse_decode=True)
    if cfg.decode_scorer != "keys4":
        raise ValueError(
            f"hf_serving.enable: continuous batching runs the ragged step, which keeps the keys4 "
            f"decode state: decode_scorer must be 'keys4', got {cfg.decode_scorer!r}"
        )
    _DECODE_POOL[0] = bool(decode_pool)
    _install()
    return serving_config(**cb_overrides)


def check_model_dtype(device: torch.device, dtype: torch.dtype) -> None:
    """Refuse a model the served step cannot run, before the engine starts: on CUDA the keys4
    decode scorer takes 16-bit inputs only (and the attention ops' fp32 path is a slow
    correctness path), and an error raised inside the engine's loop
    ends every request in flight (the engine's worker stops), not only the one that hit it."""
    if torch.device(device).type == "cuda" and dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(
            f"hf_serving.enable: on CUDA the model must be float16 or bfloat16 (the "
            f"tensor-core kernels), got {dtype}: load it with dtype=torch.bfloat16 "
            f"(python -m sketchwalk serve: --dtype bfloat16)"
        )


def _packed_lengths(kwargs) -> tuple[list[int], list[int]]:
    """Host query and key counts per row from the varlen kwargs (a read from the device)."""
    cu_q = kwargs["cu_seq_lens_q"]
    cu_k = kwargs["cu_seq_lens_k"]
    if isinstance(cu_k, dict):  # hybrid models: one per layer type (5.17)
        cu_k = cu_k["full_attention"]
    cq, ck = cu_q.tolist(), cu_k.tolist()
    q_lens = [b - a for a, b in zip(cq, cq[1:])]
    k_lens = [b - a for a, b in zip(ck, ck[1:])]
    return q_lens, k_lens


def _log_densities(session: _Session, plan, num_layers: int) -> None:
    for seq, state in zip(plan.sequences, session.plan_states):
        tq, tk = seq.num_queries, seq.num_keys
        area = tq * tk - tq * (tq - 1) // 2  # the last tq rows of a causal tk x tk square
        kept = [state.density_tensor(layer) for layer in range(num_layers)]
        session.densities.append((seq.phase, area, [d for d in kept if d is not None]))


def cb_attention(module, query, key, value, kwargs) -> torch.Tensor:
    """One layer of a continuous-batching step (called by hf.sketchwalk_attention_forward, which
    has checked the softmax scale, dropout and softcapping):
    query [1, Hq, T, D] packed rows; key / value [1, Hkv, S, D] each row's keys (5.25), or the
    new ones with the cache in kwargs (5.17). Returns [1, T, Hq, D]."""
    from .. import ragged
    from ..state import SketchWalkState
    from . import hf

    if kwargs.get("block_table") is not None or kwargs.get("k_cache") is not None:
        raise NotImplementedError(
            "sketchwalk: continuous batching with a block table (flash's decode path) is not "
            "supported; use hf_serving.serving_config()"
        )
    session = _CURRENT[0]
    if session is None or session.batch_ids is None:
        raise RuntimeError(
            "sketchwalk: continuous batching needs its scheduler: pass "
            "continuous_batching_config=sketchwalk.integrations.hf_serving.enable(model, ...)"
        )
    layer_idx = int(module.layer_idx)
    cache = kwargs.get("cache")
    if cache is not None:  # 5.17: the attention function writes the new keys to the cache
        key, value = cache.update(
            key_states=key,
            value_states=value,
            layer_idx=layer_idx,
            read_index=kwargs["read_index"],
            write_index=kwargs["write_index"],
        )  # [S, Hkv, D]
    else:
        key, value = key[0].transpose(0, 1), value[0].transpose(0, 1)
    rt = hf._runtime_for_config(module.config)
    cfg = hf._sketchwalk_config(module.config, rt)

    if session.plan is None or layer_idx <= session.last_layer:  # the forward's first layer
        if session.lengths is not None:  # host counts: no read of cu_seq_lens from the device
            q_lens = [q for q, _ in session.lengths]
            k_lens = [k for _, k in session.lengths]
            if sum(q_lens) > query.shape[2] or sum(k_lens) > key.shape[0]:
                raise RuntimeError(
                    f"sketchwalk: the scheduled rows ({sum(q_lens)} queries, {sum(k_lens)} "
                    f"keys) do not fit the step ({query.shape[2]} queries, {key.shape[0]} keys)"
                )
        else:
            q_lens, k_lens = _packed_lengths(kwargs)
        if len(q_lens) != len(session.batch_ids):
            raise RuntimeError(
                f"sketchwalk: the batch has {len(q_lens)} rows but the scheduler scheduled "
                f"{len(session.batch_ids)} requests"
            )
        states = []
        for request_id, tq, tk in zip(session.batch_ids, q_lens, k_lens):
            state = session.states.get(request_id)
            if tq == tk or state is None:
                if tq != tk:
                    raise RuntimeError(
                        f"sketchwalk: request {request_id!r} arrives with {tk - tq} cached "
                        "tokens this integration did not see (prefix sharing is off in "
                        "serving_config; was the request forked?)"
                    )
                state = session.states[request_id] = SketchWalkState(cfg)
                state.decode_pool = session.decode_pool
            states.append(state)
        session.plan = ragged.StepPlan(cfg, q_lens, k_lens, device=query.device)
        session.plan_states = states
    session.last_layer = layer_idx
    plan = session.plan
    if layer_idx == module.config.num_hidden_layers - 1:  # the forward's last layer
        session.batch_ids = None  # a later packed call without a scheduled batch is refused
    q = query[0].transpose(0, 1)[: plan.total_q]
    out = ragged.sketchwalk_attention_varlen(
        q,
        key[: plan.total_k],
        value[: plan.total_k],
        layer_idx,
        session.plan_states,
        plan,
    )
    if layer_idx == module.config.num_hidden_layers - 1:
        if session.densities is not None:
            _log_densities(session, plan, module.config.num_hidden_layers)
        # The step is over: hold no state past it (a finished request's buffers go with it).
        session.plan, session.plan_states = None, None
    if query.shape[2] > plan.total_q:  # padded rows past the last request: never read
        out = torch.cat([out, out.new_zeros(query.shape[2] - plan.total_q, *out.shape[1:])])
    return out.unsqueeze(0)
