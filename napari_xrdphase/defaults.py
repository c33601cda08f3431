"""Defaults shared by the Python API, the command line and the docks (no torch import)."""

# the method names of ssl.METHODS, listed here so that the CLI and the docks need not import torch
PAPER_METHODS = ("specrrmoco", "specrr", "specmoco", "specselftime")
DEFAULT_METHOD = "xrdphase"
METHOD_NAMES = (DEFAULT_METHOD, *PAPER_METHODS)
# 60 epochs: where the ablations were measured (docs/benchmarks.md); ~6–9 min on 2 CPU cores
# for ~900 curves, under a minute on a GPU
DEFAULT_EPOCHS = 60
# pretraining from the built-in encoder (init="builtin", the CLI's and the docks' default): at
# most this many epochs, ended earlier by the stopping rule (training.FINETUNE_PATIENCE)
DEFAULT_INIT = "builtin"
FINETUNE_MAX_EPOCHS = 30
DEFAULT_BATCH_SIZE = 128
DEFAULT_MOCO_WEIGHT = 0.01
# the linear classifier also learns each labelled curve with its d-spacings scaled by evenly
# spaced strains in ±PROBE_STRAIN, PROBE_STRAIN_STEPS copies (classify.fit_classifier)
PROBE_STRAIN = 0.01
PROBE_STRAIN_STEPS = 2
MAX_PROBE_STRAIN = 0.5  # strains must stay below this
# the classifier's features are whitened against what a uniform strain of this standard
# deviation does to the embeddings of the series' curves (classify.fit_classifier)
PROBE_WHITENING_STRAIN = 0.03
