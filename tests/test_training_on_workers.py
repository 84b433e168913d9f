"""Training off the driver: cross-validation folds and the final ensemble's members as Dask
tasks give exactly what the serial path gives (same seeds, same out-of-fold predictions,
same fitted members), and quicklooks drawn as a worker task are the same files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from mlcases import FEATS, SMALL, sites_table

from fluxscape.ml.models import FluxModel
from fluxscape.ml.validation import cross_validate


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes: the tasks are pickled as in a run."""
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": None},
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def _table() -> pd.DataFrame:
    t = sites_table(n_sites=4, n=40)
    t["time"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(t.index % 40 * 30, "D")
    t.loc[t.index[:5], "reco"] = np.nan  # targets with their own rows
    return t


def test_folds_on_workers_equal_serial(client):
    t = _table()
    args = {"methods": ("rf", "lgbm"), "method_params": SMALL, "random_state": 3}
    serial = cross_validate(t, FEATS, ["gpp", "reco"], **args)
    seen: list[str] = []
    remote = cross_validate(t, FEATS, ["gpp", "reco"], **args, client=client, on_member=seen.append)
    pd.testing.assert_frame_equal(serial.predictions, remote.predictions, check_exact=True)
    assert remote.predictions["pred"].notna().all()
    assert len(seen) == 2 * 4 * 2  # targets x folds x members: progress for every member
    other = cross_validate(t, FEATS, ["gpp"], **{**args, "random_state": 4}, client=client)
    assert not np.array_equal(
        other.predictions["pred"].to_numpy(), remote.predictions.query("target == 'gpp'")["pred"]
    )


def test_final_model_on_workers_equals_serial(client):
    t = _table()
    kw = {"methods": ("rf", "hgb"), "n_splits": 3, "method_params": SMALL, "random_state": 1}
    serial = FluxModel(tuple(FEATS), ("gpp", "reco"), **kw)
    serial.fit(t[FEATS], t[["gpp", "reco"]], groups=t["site"])
    remote = FluxModel(tuple(FEATS), ("gpp", "reco"), **kw)
    futures = remote.submit_fit(client, t[FEATS], t[["gpp", "reco"]], groups=t["site"])
    labels: list[str] = []
    remote.collect_fit(futures, on_member=labels.append)
    assert labels == [
        f"{t} {m}/fold{f}" for t in ("gpp", "reco") for m in ("rf", "hgb") for f in range(3)
    ]
    assert remote.n_train_ == serial.n_train_ == {"gpp": 160, "reco": 155}
    for target in ("gpp", "reco"):
        assert remote.ensembles_[target].member_labels_ == serial.ensembles_[target].member_labels_
    a, b = serial.predict_with_sd(t[FEATS]), remote.predict_with_sd(t[FEATS])
    for target in ("gpp", "reco"):
        np.testing.assert_array_equal(a[target][0], b[target][0])
        np.testing.assert_array_equal(a[target][1], b[target][1])


def test_quicklooks_drawn_on_a_worker_equal_driver(client, demo_out, tmp_path):
    """The worker task draws the maps the driver draws, byte for byte: the quicklooks of
    the finished demo's vi store, the same set of files as the demo's."""
    from fluxscape.pipeline.quicklook import draw_quicklooks, quicklook_variables, write_quicklooks

    store = demo_out / "products" / "vi.zarr"
    variables = quicklook_variables(store)
    assert variables == ["evi", "evi2", "nbr", "ndvi"]
    # as the runner submits them: one task per variable
    tasks = [client.submit(draw_quicklooks, store, tmp_path, "vi", [v]) for v in variables]
    there = [p for paths in client.gather(tasks) for p in paths]
    before = sorted((demo_out / "quicklooks" / "vi").glob("*.png"))
    assert sorted(p.name for p in there) == [p.name for p in before] and len(before) == 8
    here = write_quicklooks(store, tmp_path / "driver", "vi")
    assert sorted(p.name for p in here) == [p.name for p in before]
    for b in here:
        assert (tmp_path / "vi" / b.name).read_bytes() == b.read_bytes(), b.name
