"""Model files: skops round trip, model card, refusal of unknown types."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skops.io as sio
from mlcases import FEATS, SMALL, sites_table
from sklearn.base import BaseEstimator

from fluxscape.errors import FluxscapeError
from fluxscape.ml.models import FluxModel
from fluxscape.ml.persist import card_path, load_model, read_card, save_model

CARD = {
    "targets": ["gpp", "reco"],
    "features": FEATS,
    "sites": ["S0", "S1"],
    "period": ["2020-01-01", "2020-12-31"],
    "cv_skill": {"gpp": {"step": {"r2": 0.8}}},
}


@pytest.fixture(scope="module")
def model():
    t = sites_table()
    m = FluxModel(FEATS, ("gpp", "reco"), ("rf", "hgb", "lgbm"), n_splits=2, method_params=SMALL)
    return m.fit(t, t[["gpp", "reco"]], groups=t["site"]), t


def test_round_trip_gives_identical_predictions_and_card(tmp_path, model):
    m, t = model
    card = save_model(m, tmp_path / "flux.skops", CARD)
    loaded, card2 = load_model(tmp_path / "flux.skops")
    for name, (mean, sd) in m.predict_with_sd(t).items():
        got_mean, got_sd = loaded.predict_with_sd(t)[name]
        np.testing.assert_array_equal(got_mean, mean)
        np.testing.assert_array_equal(got_sd, sd)
    assert card2 == card == read_card(tmp_path / "flux.skops")
    assert len(card["card_id"]) == 16
    assert card["model_type"] == "fluxscape.ml.models.FluxModel"
    assert {"scikit-learn", "lightgbm", "skops", "numpy"} <= set(card["library_versions"])
    assert card_path(tmp_path / "flux.skops").name == "flux.skops.card.json"


def test_card_needs_required_keys(tmp_path, model):
    with pytest.raises(FluxscapeError, match="cv_skill"):
        save_model(model[0], tmp_path / "m.skops", {k: v for k, v in CARD.items()
                                                   if k != "cv_skill"})


class Intruder(BaseEstimator):
    """A type no allow-list knows."""

    def __init__(self, payload="x"):
        self.payload = payload


def test_unknown_type_is_refused_naming_file_and_type(tmp_path):
    path = tmp_path / "evil.skops"
    sio.dump({"card": "{}", "model": Intruder()}, path)
    with pytest.raises(FluxscapeError) as info:
        load_model(path)
    assert "evil.skops" in str(info.value)
    assert "test_ml_persist.Intruder" in str(info.value)


def test_non_skops_and_altered_card_refused(tmp_path, model):
    junk = tmp_path / "junk.skops"
    junk.write_bytes(b"\x80\x04 not a zip")
    with pytest.raises(FluxscapeError, match="junk.skops: not a skops"):
        load_model(junk)
    path = tmp_path / "m.skops"
    card = json.loads(json.dumps(save_model(model[0], path, CARD)))
    card["cv_skill"] = {"gpp": {"step": {"r2": 0.99}}}
    sio.dump({"card": json.dumps(card), "model": model[0]}, path)
    with pytest.raises(FluxscapeError, match="does not match its card_id"):
        load_model(path)
