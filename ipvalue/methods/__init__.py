"""Valuation methods: one contract, one result type, one registry the pipeline loops over.

- :mod:`ipvalue.methods.base`: the valuer contract, :class:`MethodResult`, the value types;
- :mod:`ipvalue.methods.inputs`: :class:`ValuationInputs` (what every method receives) and the
  shared Monte Carlo :class:`Scenarios`;
- :mod:`ipvalue.methods.registry`: :func:`register_method`, :func:`registered_methods`;
- one module (and one YAML assumption set) per method: :mod:`~ipvalue.methods.income` (收益法,
  a package: valuer, DCF, assumptions, scorecard), :mod:`~ipvalue.methods.market` (市场法),
  :mod:`~ipvalue.methods.cost` (成本法), :mod:`~ipvalue.methods.ml` (the registered ML value model).

Adding a method: write its module (a valuer with ``assess(frame, inputs) -> MethodResult``,
registered with :func:`register_method`) and its YAML; see the README's "Adding a valuation
method". ``ipvalue.testing.check_valuer`` runs the contract's checks on it.
"""

from ipvalue.methods.base import INTERVAL_COLUMNS, ROLES, VALUE_TYPES, MethodResult, Valuer, value_type_label
from ipvalue.methods.inputs import Scenarios, ValuationInputs
from ipvalue.methods.registry import MethodSpec, get_method, method_labels, register_method, registered_methods, unregister_method

__all__ = ["INTERVAL_COLUMNS", "MethodResult", "MethodSpec", "ROLES", "Scenarios", "VALUE_TYPES", "ValuationInputs", "Valuer", "get_method",
           "method_labels", "register_method", "registered_methods", "unregister_method", "value_type_label"]
