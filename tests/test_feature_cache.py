"""FeatureCache: a refit from cached embeddings is the refit from fresh ones."""

import numpy as np
import pytest

from napari_xrdphase.classify import FeatureCache, fit_classifier
from napari_xrdphase.encoder import Encoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class CountingEncoder:
    """An encoder that counts the curves it embeds."""

    def __init__(self, encoder):
        self.encoder, self.curves = encoder, 0

    def embed(self, stack, *args, **kwargs):
        self.curves += stack.n_curves
        return self.encoder.embed(stack, *args, **kwargs)


def test_a_cached_refit_equals_a_fresh_fit_and_embeds_only_the_new_curves_copies(series):
    encoder = CountingEncoder(Encoder.random(1))
    labels = {"Fe36": {1: "before", 9: "before", 14: "during", 16: "during", 25: "after"}}
    cache = FeatureCache(encoder)
    cached = fit_classifier(encoder, [series.stack], labels, cache=cache)
    fresh = fit_classifier(encoder, [series.stack], labels)
    np.testing.assert_allclose(cached.weight, fresh.weight, rtol=1e-6, atol=1e-8)
    embeddings = cache.embeddings(series.stack)
    np.testing.assert_allclose(
        cached.predict_proba(embeddings), fresh.predict_proba(series.stack), atol=1e-6
    )
    before = encoder.curves
    labels["Fe36"][30] = "after"
    fit_classifier(encoder, [series.stack], labels, cache=cache)
    # one new labelled curve: its two strained copies, each embedded with a neighbour
    assert encoder.curves - before == 4


def test_a_cache_of_another_encoder_is_refused(series):
    with pytest.raises(ValueError, match="another encoder"):
        fit_classifier(
            Encoder.random(1), [series.stack], {"Fe36": {1: "before", 30: "after"}},
            cache=FeatureCache(Encoder.random(2)),
        )  # fmt: skip
