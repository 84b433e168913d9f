"""Model files: skops round trip, model card, refusal of unknown types."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest
import skops.io as sio
from mlcases import FEATS, SMALL, sites_table
from sklearn.base import BaseEstimator

from fluxscape.errors import FluxscapeError
from fluxscape.ml.models import FluxModel
from fluxscape.ml.persist import _card_id, card_path, load_model, read_card, save_model

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
    with pytest.raises(FluxscapeError, match=r"junk.skops: not a fluxscape model \(not a skops"):
        load_model(junk)
    path = tmp_path / "m.skops"
    card = json.loads(json.dumps(save_model(model[0], path, CARD)))
    card["cv_skill"] = {"gpp": {"step": {"r2": 0.99}}}
    sio.dump({"card": json.dumps(card), "model": sio.dumps(model[0])}, path)
    with pytest.raises(FluxscapeError, match="does not match its card_id"):
        load_model(path)


def _forged(path, card: dict, blob: bytes) -> None:
    """A model file holding ``blob`` under ``card`` with a consistent card_id."""
    card = {k: v for k, v in card.items() if k != "card_id"}
    card["card_id"] = _card_id(card)
    sio.dump({"card": json.dumps(card), "model": blob}, path)


def test_swapped_model_is_refused_naming_the_file(tmp_path, model):
    """Another model with the same features under the old card: the card's model_sha256
    is checked on every load."""
    m, t = model
    path = tmp_path / "flux.skops"
    card = save_model(m, path, CARD)
    other = FluxModel(FEATS, ("gpp", "reco"), ("rf",), n_splits=2, method_params=SMALL)
    other.fit(t, t[["gpp", "reco"]], groups=t["site"])
    sio.dump({"card": json.dumps(card), "model": sio.dumps(other)}, path)
    with pytest.raises(FluxscapeError, match=r"flux.skops: the model does not match its card"):
        load_model(path)


def test_object_of_another_type_is_refused_naming_the_type(tmp_path, model):
    path = tmp_path / "flux.skops"
    card = save_model(model[0], path, CARD)
    blob = sio.dumps({"features": FEATS})
    _forged(path, card | {"model_sha256": hashlib.sha256(blob).hexdigest()}, blob)
    with pytest.raises(FluxscapeError) as info:
        load_model(path)
    assert str(info.value) == (
        f"{path}: holds a builtins.dict, not a fluxscape.ml.models.FluxModel: "
        "not a fluxscape model"
    )


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("text", "not a fluxscape model (not a skops file"),
        ("pickle", "not a fluxscape model (not a skops file"),
        ("dict", "not a fluxscape model (its model is a builtins.dict"),
        ("old", "a model file of an older fluxscape, without a checkable model hash"),
    ],
)
def test_foreign_files_are_refused_in_one_line(tmp_path, model, content, says):
    path = tmp_path / "flux.skops"
    card = save_model(model[0], path, CARD)
    if content == "text":
        path.write_text("model: rf\n")
    elif content == "pickle":
        path.write_bytes(pickle.dumps({"model": [1, 2, 3]}))
    elif content == "dict":
        sio.dump({"card": json.dumps(card), "model": {"a": 1}}, path)
    else:  # the layout before model hashes were checkable: the estimator itself
        sio.dump({"card": json.dumps(card), "model": model[0]}, path)
    with pytest.raises(FluxscapeError) as info:
        load_model(path)
    assert str(info.value).startswith(f"{path}: {says}")
    assert "\n" not in str(info.value)
