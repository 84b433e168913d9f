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
import xarray as xr
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


def test_an_update_reuses_the_model_for_a_grown_training_table(saved):
    """``fluxscape update`` (reuse_model): a model of the same targets and features predicts
    though its training table changed; other features train again."""
    ctx, path, card = saved
    ctx.reuse_model = True
    assert _reusable(ctx, path, "changed", FEATS) == card
    assert _reusable(ctx, path, "changed", [*FEATS, "extra"]) is None
    ctx.reuse_model = False
    assert _reusable(ctx, path, "changed", FEATS) is None


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


TINY_FLUX = """\
name: tiny-flux
region: {{bbox: [138.0, 35.5, 139.0, 36.5], resolution: 0.05}}
tile_size: 10
period: {{start: 2021-01-01, end: 2021-12-31, step: 16D}}
data_dir: {data_dir}
inputs:
  modis_vi: {{reader: modis_hdf4, paths: ["modis/MOD13A2.A2021*.hdf"]}}
  towers: {{reader: fluxnet, paths: ["towers/FLX_*_FLUXNET2015_FULLSET_DD_*.csv"]}}
  meteo: {{reader: cf_meteo, paths: ["meteo/era5_daily_*.nc"]}}
products:
  vi: {{kind: vi, input: modis_vi, variables: [ndvi, evi]}}
  flux:
    kind: flux
    source: vi
    predictors: [ndvi, evi]
    meteo: meteo
    towers: towers
    targets: [gpp]
    methods: [rf]
    inference: compiled
    ensemble_folds: 2
    cv: group_kfold
    n_splits: 2
    method_params: {{rf: {{n_estimators: 10}}}}
output: {{dir: out}}
dask: {{workers: 1, processes: false}}
"""


def test_replaced_model_file_on_resume_is_refused_then_fresh_retrains(
    tmp_path, sample_dir, monkeypatch
):
    """The issue's probe: a flux run stops after training (its tiles fail), a text file
    replaces the model, --resume. One line names the model file and asks for --fresh (a
    --resume cannot work); --fresh trains again and the store carries the new card."""
    from click.testing import CliRunner

    from fluxscape.cli import cli
    from fluxscape.ml.persist import load_model, read_card
    from fluxscape.pipeline.steps import flux

    wf = tmp_path / "tiny.yaml"
    wf.write_text(TINY_FLUX.format(data_dir=sample_dir))
    out = tmp_path / "out"
    model = out / "models" / "flux" / "flux_model.skops"

    def broken(task):
        raise RuntimeError("stopped after training")

    with monkeypatch.context() as patch:
        patch.setattr(flux, "run_flux_tile", broken)
        first = CliRunner().invoke(cli, ["run", str(wf)])
    assert first.exit_code == 1 and "stopped after training" in first.stderr
    model.write_text("not a model\n")

    resumed = CliRunner().invoke(cli, ["run", str(wf), "--resume"])
    line = resumed.stderr.strip().splitlines()[-1]
    assert resumed.exit_code == 1 and "Traceback" not in resumed.stderr
    assert line.startswith(f"error: {model}: not a fluxscape model (not a skops file")
    assert line.endswith("rerun with --fresh to retrain and rebuild it)")

    fresh = CliRunner().invoke(cli, ["run", str(wf), "--fresh"])
    assert fresh.exit_code == 0, fresh.output
    assert f"{model}: not a fluxscape model" in fresh.stderr  # the warning: trained again
    _, card = load_model(model)
    assert card == read_card(model)
    # the tiles were predicted by the compiled members of this card (inference: compiled)
    from fluxscape.ml import compiled

    assert compiled.load_compiled(model, card).runtimes == {"gpp": ["numba", "numba"]}
    with xr.open_zarr(out / "products" / "flux.zarr") as ds:
        assert ds.attrs["models"] == [card["card_id"]]
        assert ds["gpp"].attrs["model_card"] == card["card_id"]
