"""Model governance, generated from MLflow and reproducible from a registered version: stability
(PSI / CSI), promotion through gates, model cards, validation reports and the override log."""

from ipvalue.governance.card import ModelCard, model_card
from ipvalue.governance.drift import PSI_ACT, PSI_WATCH, drift_report, load_reference, load_reference_spec, psi, verdict
from ipvalue.governance.monitoring import drift_document
from ipvalue.governance.overrides import override_summary
from ipvalue.governance.promotion import PromotionError, promote
from ipvalue.governance.validation import add_methods_backtest, methods_backtest, methods_validation_report, validation_report

__all__ = ["PSI_ACT", "PSI_WATCH", "ModelCard", "PromotionError", "add_methods_backtest", "drift_document", "drift_report", "load_reference",
           "load_reference_spec", "methods_backtest", "methods_validation_report", "model_card", "override_summary", "promote", "psi",
           "validation_report", "verdict"]
