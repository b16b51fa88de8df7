"""Feature builders for patent attributes, declared in ``features/*.yaml``, normalised by cohort."""

from ipvalue.features.builders import event_counts, infer_applicant_type, normalise_ipc
from ipvalue.features.spec import Feature, FeatureSpec
from ipvalue.features.transformer import FeatureResult, FeatureWarning, PatentFeatureBuilder, shared_feature_groups

__all__ = [
    "Feature",
    "FeatureResult",
    "FeatureSpec",
    "FeatureWarning",
    "PatentFeatureBuilder",
    "event_counts",
    "infer_applicant_type",
    "normalise_ipc",
    "shared_feature_groups",
]
