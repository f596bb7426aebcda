"""Step caching through cache-dit (DBCache, TaylorSeer): its config, its hooks, its counts.

`parse_cache_config("dbcache", '{"Fn_compute_blocks": 1}')` checks a `<SERVER>_CACHE_CONFIG`
JSON against cache-dit's own config fields (an unknown field or a wrong type is an error naming
it); `enable_cache(pipe, ...)` installs the hooks and makes each later `pipe(...)` call record
how many of its denoising steps were served from the cache (`CacheStats`, a log line with the
request id, and the Prometheus counter `imagemesh_modelserver_cached_steps_total{server}`).

cache-dit patches `__call__` on the pipeline's class, so every pipeline of that class in the
process would run inside the first one's cache context. Each cached pipeline gets a private
subclass of the same name first (cache-dit finds its adapter by the class-name prefix), and the
diffusers class itself is never touched.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import typing
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from pydantic import ConfigDict, ValidationError, create_model

log = logging.getLogger("imagemesh.acceleration")

CACHED_STEPS = Counter(
    "imagemesh_modelserver_cached_steps",
    "Denoising steps whose transformer blocks were served from the step cache",
    ["server"],
)

# TaylorSeer is DBCache plus a forecasting calibrator; these of its fields may be set.
TAYLORSEER_FIELDS = ("taylorseer_order", "calibrator_cache_type", "enable_encoder_calibrator")
# Decided per call from the request (true CFG on or off), never by the operator.
_PER_CALL_FIELDS = ("cache_type", "enable_separate_cfg")


class CacheConfigError(ValueError):
    """`<SERVER>_CACHE_CONFIG` cannot be used; the message names the field."""


def _fields_model(cls: type, keep: typing.Callable[[str], bool]) -> Any:
    """A pydantic model of a cache-dit config dataclass's fields (extra fields forbidden)."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if not keep(field.name):
            continue
        # residual_diff_threshold is `Union[torch.Tensor, float]`: JSON can only give a number.
        hint = float if "Tensor" in str(hints[field.name]) else hints[field.name]
        default = (
            field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc,operator]
        )
        fields[field.name] = (hint, default)
    return create_model(
        f"{cls.__name__}Fields", __config__=ConfigDict(extra="forbid", strict=True), **fields
    )


def cache_fields(kind: str) -> tuple[str, ...]:
    """The JSON fields `<SERVER>_CACHE_CONFIG` may set for a cache kind."""
    from cache_dit import DBCacheConfig  # type: ignore[import-untyped]

    names = tuple(
        f.name for f in dataclasses.fields(DBCacheConfig) if f.name not in _PER_CALL_FIELDS
    )
    return names + TAYLORSEER_FIELDS if kind == "taylorseer" else names


def parse_cache_config(kind: str, text: str, variable: str = "CACHE_CONFIG") -> dict[str, Any]:
    """The fields a `<SERVER>_CACHE_CONFIG` JSON object sets, checked against cache-dit's.

    Raises:
        CacheConfigError: not a JSON object, an unknown field (named, with the known ones), a
            value of the wrong type, or a TaylorSeer field with `CACHE=dbcache`.
    """
    from cache_dit import DBCacheConfig, TaylorSeerCalibratorConfig  # type: ignore[import-untyped]

    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CacheConfigError(f"{variable} is not JSON ({exc}): {text!r}") from None
    if not isinstance(raw, dict):
        raise CacheConfigError(f"{variable} must be a JSON object of cache-dit fields: {text!r}")
    allowed = cache_fields(kind)
    for name in raw:
        if name in TAYLORSEER_FIELDS and kind != "taylorseer":
            raise CacheConfigError(f"{variable}: {name} applies only with CACHE=taylorseer")
        if name not in allowed:
            raise CacheConfigError(
                f"{variable}: unknown field {name!r}; cache-dit's {kind} fields are "
                + ", ".join(allowed)
            )
    cache_part = {k: v for k, v in raw.items() if k not in TAYLORSEER_FIELDS}
    taylor_part = {k: v for k, v in raw.items() if k in TAYLORSEER_FIELDS}
    checks = (
        (DBCacheConfig, cache_part, lambda n: n not in _PER_CALL_FIELDS),
        (TaylorSeerCalibratorConfig, taylor_part, lambda n: n in TAYLORSEER_FIELDS),
    )
    for cls, part, keep in checks:
        try:
            _fields_model(cls, keep).model_validate_json(json.dumps(part))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise CacheConfigError(
                f"{variable}: {where}: {first['msg']} (got {first.get('input')!r})"
            ) from None
    return dict(raw)


@dataclass(frozen=True)
class CacheStats:
    """What the cache did in one pipeline call."""

    cached_steps: int  # denoising steps whose (conditional) transformer pass was cached
    cfg_cached_steps: int  # of the negative-prompt passes, when true CFG was on
    steps: int  # denoising steps run


def build_configs(kind: str, fields: dict[str, Any]) -> tuple[Any, Any]:
    """cache-dit's `(DBCacheConfig, TaylorSeerCalibratorConfig | None)` for checked fields."""
    from cache_dit import DBCacheConfig, TaylorSeerCalibratorConfig  # type: ignore[import-untyped]

    cache_config = DBCacheConfig(**{k: v for k, v in fields.items() if k not in TAYLORSEER_FIELDS})
    calibrator = None
    if kind == "taylorseer":
        calibrator = TaylorSeerCalibratorConfig(
            **{k: v for k, v in fields.items() if k in TAYLORSEER_FIELDS}
        )
    return cache_config, calibrator


def cache_refusal(pipe: Any, fields: dict[str, Any]) -> str | None:
    """Why the step cache cannot apply to this pipeline, or None when it can."""
    from cache_dit import BlockAdapterRegister, DBCacheConfig  # type: ignore[import-untyped]

    name = type(pipe).__name__
    if getattr(pipe, "transformer", None) is None:
        return f"{name} has no transformer to cache"
    if not BlockAdapterRegister.is_supported(pipe):
        return f"cache-dit 1.5.3 has no block adapter for {name}"
    blocks = getattr(pipe.transformer, "transformer_blocks", None)
    count = len(blocks) if blocks is not None else 0
    defaults = DBCacheConfig()
    first = fields.get("Fn_compute_blocks", defaults.Fn_compute_blocks)
    last = fields.get("Bn_compute_blocks", defaults.Bn_compute_blocks)
    if first + last >= count:
        return (
            f"Fn_compute_blocks {first} + Bn_compute_blocks {last} leave none of the "
            f"transformer's {count} blocks to cache (set them in CACHE_CONFIG, e.g. "
            f'{{"Fn_compute_blocks": 1, "Bn_compute_blocks": 0}})'
        )
    return None


def _true_cfg(kwargs: dict[str, Any]) -> bool:
    """Whether this call runs a second (negative-prompt) transformer pass per step, as the
    Qwen-Image pipelines decide it: a negative prompt and `true_cfg_scale` > 1 (default 4)."""
    negative = kwargs.get("negative_prompt") is not None or (
        kwargs.get("negative_prompt_embeds") is not None
    )
    return negative and float(kwargs.get("true_cfg_scale", 4.0)) > 1


def enable_cache(pipe: Any, kind: str, fields: dict[str, Any], server: str) -> None:
    """Installs cache-dit's hooks on `pipe` (in place); later calls record `CacheStats`."""
    import cache_dit  # type: ignore[import-untyped]

    base = type(pipe)
    pipe.__class__ = type(base.__name__, (base,), {"__module__": base.__module__})
    cache_config, calibrator = build_configs(kind, fields)
    cache_dit.enable_cache(pipe, cache_config=cache_config, calibrator_config=calibrator)
    cached_call = type(pipe).__call__

    def counted_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        # cache-dit alternates conditional and CFG passes when told the model runs both; a call
        # without true CFG runs one pass per step, so it must say so for this call.
        separate = _true_cfg(kwargs)
        for context in _contexts(self):
            context["cache_config"].enable_separate_cfg = separate
        output = cached_call(self, *args, **kwargs)
        stats = last_stats(self)
        CACHED_STEPS.labels(server).inc(stats.cached_steps)
        log.info(
            "step cache: %d of %d steps cached (%d CFG passes)",
            stats.cached_steps,
            stats.steps,
            stats.cfg_cached_steps,
        )
        return output

    pipe.__class__ = type(
        base.__name__, (type(pipe),), {"__module__": base.__module__, "__call__": counted_call}
    )


def _contexts(pipe: Any) -> list[dict[str, Any]]:
    """cache-dit's per-blocks context arguments, reused at the start of every call."""
    found = [pipe._context_kwargs]
    for module in pipe.transformer.modules():
        kwargs = getattr(module, "_context_kwargs", None)
        if isinstance(kwargs, dict) and all(kwargs is not seen for seen in found):
            found.append(kwargs)
    return found


def last_stats(pipe: Any) -> CacheStats:
    """The cache's counts for the pipeline's last call (cache-dit resets them every call)."""
    transformer = pipe.transformer
    return CacheStats(
        cached_steps=len(getattr(transformer, "_cached_steps", []) or []),
        cfg_cached_steps=len(getattr(transformer, "_cfg_cached_steps", []) or []),
        steps=int(getattr(transformer, "_accumulated_executed_steps", 0) or 0),
    )
