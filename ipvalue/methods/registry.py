"""The registry of valuation methods the pipeline loops over.

A method registers itself from its own module::

    @register_method("market", label_zh="市场法", label_en="market approach", needs=("comparables",))
    def market_method(inputs: ValuationInputs) -> MarketApproachValuer:
        return MarketApproachValuer(inputs.comparables, valuation_date=inputs.valuation_date)

The factory builds the method's valuer for a valuation; the pipeline then calls
``valuer.fit(patents)`` and ``valuer.assess(patents, inputs)`` and collects the
:class:`~ipvalue.methods.base.MethodResult`. The shipped methods (income, market, cost, the ML
value model) are registered when the registry is first read; another package registers its own
methods through the ``ipvalue.methods`` entry-point group (each entry point names a module that
calls :func:`register_method` when imported), or by importing its module before valuing.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Callable

logger = logging.getLogger(__name__)

#: The shipped methods, imported (and so registered) on first use of the registry.
BUILTIN_MODULES = ("ipvalue.methods.income", "ipvalue.methods.market", "ipvalue.methods.cost", "ipvalue.methods.ml")
ENTRY_POINT_GROUP = "ipvalue.methods"


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its name, labels, the inputs it needs and the factory of its valuer."""

    name: str
    label_zh: str
    label_en: str
    needs: tuple[str, ...]
    factory: Callable
    order: int

    @property
    def label(self) -> str:
        return f"{self.label_zh} {self.label_en}"


_REGISTRY: dict[str, MethodSpec] = {}
_loaded = False


def register_method(name: str, *, label_zh: str, label_en: str, needs: tuple[str, ...] = (), order: int | None = None):
    """Decorator registering ``factory(inputs) -> valuer`` as the method ``name``.

    Parameters
    ----------
    name : str
        Registry key: lower-case letters, digits and '_' (it names columns such as
        ``<name>_value_rmb``).
    label_zh, label_en : str
        The method's name for readers.
    needs : tuple of str
        Inputs of :class:`~ipvalue.methods.inputs.ValuationInputs` the method needs (it is not run,
        and the report says so, when one is missing).
    order : int, optional
        Position in reports (default: after the shipped methods, in registration order, even when
        the module is imported before the registry is first read).
    """
    if not name.replace("_", "").isalnum() or not name.islower() or not name[0].isalpha():
        raise ValueError(f"A method name must be lower-case letters, digits and '_', starting with a letter. Got {name!r}.")

    def decorate(factory: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].factory is not factory:
            raise ValueError(f"A method named {name!r} is already registered ({_REGISTRY[name].factory.__module__}). Fix: choose another name or unregister it first.")
        position = len(BUILTIN_MODULES) + len(_REGISTRY) if order is None else int(order)
        _REGISTRY[name] = MethodSpec(name, label_zh, label_en, tuple(needs), factory, position)
        return factory

    return decorate


def unregister_method(name: str) -> None:
    """Remove a registered method (tests; a bank retiring a method)."""
    _load_builtins()
    _REGISTRY.pop(name, None)


def registered_methods() -> list[MethodSpec]:
    """Every registered method, in report order."""
    _load_builtins()
    return sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name))


def get_method(name: str) -> MethodSpec:
    _load_builtins()
    if name not in _REGISTRY:
        raise KeyError(f"No valuation method {name!r} is registered. Registered: {sorted(_REGISTRY)}.")
    return _REGISTRY[name]


def method_labels() -> dict[str, tuple[str, str]]:
    """``{name: (label_zh, label_en)}`` of the registered methods."""
    return {s.name: (s.label_zh, s.label_en) for s in registered_methods()}


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            importlib.import_module(ep.value.split(":")[0])
        except Exception:  # a broken third-party plug-in must not stop valuations; it is logged
            logger.exception("valuation method plug-in %r could not be loaded", ep.value)
