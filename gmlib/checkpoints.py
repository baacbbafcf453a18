"""Train once, load afterwards: `load_or_train` caches a model's weights by what determines them.

The cache key hashes the model class, its config, a data key, the FAST flag, and `model.cache_key()` when
the model has one (models that take injected functions, like a student's loss, put the functions' source
there, so fixing a bug in the exercise retrains instead of loading stale weights).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .config import cache_dir, fast_mode
from .device import device_of
from .train import History

__all__ = ["load_or_train", "checkpoint_path", "function_key", "config_key"]


def function_key(fn: Callable | None) -> str:
    """A stable fingerprint of a function's code: its source where available, else its bytecode."""
    if fn is None:
        return "none"
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = repr((code.co_code, code.co_consts, code.co_names)) if code is not None else repr(fn)
    qual = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}"
    return hashlib.sha256((qual + "\n" + text).encode()).hexdigest()[:16]


def _jsonable(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__dataclass__": type(obj).__name__, **_jsonable(dataclasses.asdict(obj))}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if callable(obj):
        return function_key(obj)
    return repr(obj)


def config_key(**parts) -> str:
    """A short hash of any JSON-able description (dataclasses, dicts, lists, numbers, functions)."""
    blob = json.dumps(_jsonable(parts), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def checkpoint_path(name: str, model: nn.Module, *, config=None, data_key=None, fast: bool | None = None) -> Path:
    """Where `load_or_train` keeps (or would keep) this model's weights (`fast` defaults to GMLIB_FAST)."""
    extra = model.cache_key() if hasattr(model, "cache_key") else None
    fast = fast_mode() if fast is None else fast
    key = config_key(cls=type(model).__qualname__, config=config, data=data_key, extra=extra, fast=fast)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return cache_dir() / f"{safe}-{key}.pt"


def load_or_train(
    name: str,
    model: nn.Module,
    train: Callable[[nn.Module], History | None],
    *,
    config=None,
    data_key=None,
    retrain: bool = False,
    fast: bool | None = None,
) -> tuple[nn.Module, History | None]:
    """Load `model`'s weights from the cache, or call `train(model)` and cache the result.

    Returns `(model, history)`; the history is the one recorded when the model was trained (None if the
    training function returned none). The model ends in eval mode on the device it had (or was trained on).
    `fast` (default: GMLIB_FAST) is part of the key, so FAST-mode weights never stand in for a full run.
    """
    path = checkpoint_path(name, model, config=config, data_key=data_key, fast=fast)
    if path.exists() and not retrain:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            model.to(device_of(model)).eval()
            hist = state.get("history")
            return model, (History.from_dict(hist) if hist is not None else None)
        except Exception as err:  # a damaged cache file is retrained, never fatal
            print(f"load_or_train: cached checkpoint {path.name} unreadable ({type(err).__name__}); retraining")
    history = train(model)
    model.eval()
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "history": history.to_dict() if isinstance(history, History) else None,
    }
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return model, history if isinstance(history, History) else None
