"""The flux step reuses a saved model only when its file is the model its card describes:
otherwise it trains again (no store depends on the model yet) or refuses in one line naming
the file (an unfinished store was predicted by the carded model; retraining would mix two
models in one store). Never a store labelled with a card its model did not make."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import skops.io as sio
import zarr
from mlcases import FEATS, SMALL, sites_table

from fluxscape.errors import FluxscapeError
from fluxscape.ml.models import FluxModel
from fluxscape.ml.persist import card_path, save_model
from fluxscape.pipeline.steps.flux import _reusable

CARD = {
    "targets": ["gpp", "reco"],
    "features": FEATS,
    "sites": ["S0", "S1"],
    "period": ["2020-01-01", "2020-12-31"],
    "cv_skill": {},
    "fingerprint": "f1",
}


def _fit(methods=("rf",)) -> FluxModel:
    t = sites_table()
    m = FluxModel(FEATS, ("gpp", "reco"), methods, n_splits=2, method_params=SMALL)
    return m.fit(t, t[["gpp", "reco"]], groups=t["site"])


@pytest.fixture(scope="module")
def models() -> tuple[FluxModel, FluxModel]:
    return _fit(("rf",)), _fit(("hgb",))


@pytest.fixture()
def saved(tmp_path: Path, models) -> tuple[SimpleNamespace, Path, dict]:
    """A product context and its saved model, no unfinished store yet."""
    path = tmp_path / "models" / "flux" / "flux_model.skops"
    card = save_model(models[0], path, CARD)
    ctx = SimpleNamespace(
        name="flux",
        out_dir=tmp_path,
        store=tmp_path / ".fluxscape" / "building" / "flux.zarr",
        product=SimpleNamespace(targets=["gpp", "reco"]),
    )
    return ctx, path, card


def _unfinished_store(ctx, card_id: str) -> None:
    group = zarr.open_group(str(ctx.store), mode="w")
    group.create_array("gpp", shape=(2, 2), dtype="float32").attrs["model_card"] = card_id


def _break(path: Path, how: str, models) -> None:
    if how == "text":
        path.write_text("not a model\n")
    elif how == "swapped":  # another model, with its own card, under the old card.json
        save_model(models[1], path.with_name("other.skops"), CARD | {"fingerprint": "f1"})
        path.with_name("other.skops").replace(path)
    elif how == "same-card":  # another model under the very same card
        card = json.loads(card_path(path).read_text())
        sio.dump({"card": json.dumps(card), "model": sio.dumps(models[1])}, path)


def test_intact_model_is_reused(saved):
    ctx, path, card = saved
    assert _reusable(ctx, path, "f1") == card
    _unfinished_store(ctx, card["card_id"])
    assert _reusable(ctx, path, "f1") == card
    assert _reusable(ctx, path, "changed") is None  # another training table: train again


@pytest.mark.parametrize("how", ["text", "swapped", "same-card"])
def test_bad_model_is_retrained_when_no_store_depends_on_it(saved, models, how, caplog):
    ctx, path, _ = saved
    _break(path, how, models)
    with caplog.at_level(logging.WARNING, logger="fluxscape"):
        assert _reusable(ctx, path, "f1") is None
    assert str(path) in caplog.text and "training the model again" in caplog.text


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("text", "not a fluxscape model (not a skops file"),
        ("swapped", "holds model card"),
        ("same-card", "the model does not match its card's model_sha256"),
    ],
)
def test_bad_model_is_refused_when_an_unfinished_store_used_it(saved, models, how, says):
    ctx, path, card = saved
    _unfinished_store(ctx, card["card_id"])
    _break(path, how, models)
    with pytest.raises(FluxscapeError) as info:
        _reusable(ctx, path, "f1")
    message = str(info.value)
    assert message.startswith(f"{path}: {says}") and "\n" not in message
    assert "--fresh" in message and "--resume" not in message


def test_store_of_another_model_is_refused(saved):
    ctx, path, _ = saved
    _unfinished_store(ctx, "0123456789abcdef")
    with pytest.raises(FluxscapeError, match="predicted by model card 0123456789abcdef"):
        _reusable(ctx, path, "f1")
