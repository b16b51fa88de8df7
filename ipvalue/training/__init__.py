"""Training: experiment files, their public steps (data, split, fit, evaluation, gates) and the
runner that logs and registers the result in MLflow."""

from ipvalue.training.experiment import ExperimentResult, TrainedModel, headline_stage, load_data, load_experiment, observed_outcomes, out_of_time_mask, out_of_time_renewal_model
from ipvalue.training.runner import run_experiment

__all__ = ["ExperimentResult", "TrainedModel", "headline_stage", "load_data", "load_experiment", "observed_outcomes", "out_of_time_mask", "out_of_time_renewal_model", "run_experiment"]
