"""Other libraries' front ends on the mesh: Dask (:mod:`mesh.integrations.dask`)
and joblib (:mod:`mesh.integrations.joblib`).

Both libraries are optional extras (``pip install 'mesh[dask]'``,
``'mesh[joblib]'``); nothing here is imported by ``import mesh`` except
:func:`register_joblib`, which registers the ``"mesh"`` joblib backend lazily.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import weakref
from types import ModuleType
from typing import Any

__all__ = ["recent_client", "register_joblib", "remember", "require"]

_recent: weakref.ref | None = None


def remember(client: object) -> None:
    """Note ``client`` as the most recent one (the joblib backend's default)."""
    global _recent
    _recent = weakref.ref(client)


def recent_client() -> Any:
    """The most recently created client, if it is still open."""
    client = _recent() if _recent is not None else None
    if client is None or getattr(client, "_closed", False):
        return None
    return client


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"this needs {module!r}, which is not installed: pip install 'mesh[{extra}]'"
        ) from exc


def register_joblib() -> None:
    """Register the ``"mesh"`` joblib backend if joblib is installed, without
    importing joblib or the backend now: joblib imports
    :mod:`mesh.integrations.joblib` the first time the backend is used."""
    if importlib.util.find_spec("joblib") is None:
        return
    _LazyJoblib.install()


class _LazyJoblib:
    """Registers a factory with joblib once joblib itself gets imported."""

    @staticmethod
    def factory(**kwargs: object) -> object:
        from mesh.integrations.joblib import MeshBackend

        return MeshBackend(**kwargs)

    @classmethod
    def install(cls) -> None:
        if "joblib" in sys.modules:
            cls.register()
        elif not any(isinstance(f, _JoblibHook) for f in sys.meta_path):
            sys.meta_path.insert(0, _JoblibHook())

    @classmethod
    def register(cls) -> None:
        from joblib import register_parallel_backend

        register_parallel_backend("mesh", cls.factory)


class _JoblibHook(importlib.abc.MetaPathFinder):
    """Finds ``joblib`` like the other finders do, and registers the backend
    right after the package has executed; then removes itself."""

    def find_spec(self, fullname: str, path: object, target: object = None) -> object:
        if fullname != "joblib":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("joblib")
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> object:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        module.__loader__ = self._inner
        if module.__spec__ is not None:
            module.__spec__.loader = self._inner
        _LazyJoblib.register()

    def __getattr__(self, name: str) -> object:  # resource readers and the like
        return getattr(self._inner, name)
