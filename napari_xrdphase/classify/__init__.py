"""Linear evaluation: a linear classifier on frozen encoder embeddings of a few labelled curves.

- ``fitting``: ``fit_classifier`` (L-BFGS with cross-validated strength, or the paper's SGD),
  strained copies of the labelled curves;
- ``classifier``: the trained ``Classifier`` (probabilities, phase labels);
- ``classifier_file``: its file format;
- ``whitening``: strain whitening of the features;
- ``labels``: label checks and class order;
- ``novelty``: how unlike every labelled curve a curve is;
- ``compare``: two encoders' cross-validated scores on the same labels.
- ``cache``: ``FeatureCache``, embeddings computed once per series for quick refits.
"""

from ..defaults import PROBE_STRAIN, PROBE_STRAIN_STEPS, PROBE_WHITENING_STRAIN
from .cache import FeatureCache
from .classifier import Classifier, ClassifierError, Embedder, FitSummary, LabelError
from .compare import compare_encoders, describe_comparison
from .fitting import DEFAULT_SOLVER, LBFGS_C_GRID, SOLVERS, fit_classifier, probe_strains
from .labels import STANDARD_CLASS_ORDER, check_labels, labelled_phase_order, order_classes
from .novelty import NOVEL_SHARE_WARNING, NOVELTY_THRESHOLD, novel_share

__all__ = [
    "DEFAULT_SOLVER",
    "LBFGS_C_GRID",
    "NOVELTY_THRESHOLD",
    "NOVEL_SHARE_WARNING",
    "PROBE_STRAIN",
    "PROBE_STRAIN_STEPS",
    "PROBE_WHITENING_STRAIN",
    "SOLVERS",
    "STANDARD_CLASS_ORDER",
    "Classifier",
    "ClassifierError",
    "Embedder",
    "FeatureCache",
    "FitSummary",
    "LabelError",
    "check_labels",
    "compare_encoders",
    "describe_comparison",
    "fit_classifier",
    "labelled_phase_order",
    "novel_share",
    "order_classes",
    "probe_strains",
]
