"""Compiled inference of a saved FluxModel: every tree ensemble member as native code.

Each member (RandomForest, HistGradientBoosting, LightGBM with numeric splits) is flattened
by :mod:`fluxscape.ml.forest` into node arrays walked by one numba kernel (branch-free,
eight rows in lockstep, features quantised to their rank among the model's thresholds): no
C compiler, a fraction of a second per member to build, and 4-5x the libraries' own
``predict`` (bench/upscale.py). A member the kernel does not implement (categorical splits,
LightGBM zero-as-missing or linear trees, another output transform) is imported into
treelite and compiled to a shared library by tl2cgen (C code of nested if-else trees, built
with the C compiler) when it has at most :data:`MAX_NODES` nodes, else it keeps the
reference (skops-loaded) estimator.

The flat members go into ``forest.npz`` and the libraries beside it, in a folder beside
the model file, ``<model>.compiled/<key>/``, where ``key`` digests the model's
``card_id``, the numba, treelite and tl2cgen versions, the kernel's layout, the compiler
and its flags and the CPU's feature flags; ``manifest.json`` (written last) lists each
member's runtime and the sha256 of its file. A run builds once per model card (in the
driver, under a file lock, which also compiles the numba kernel into numba's on-disk
cache); workers load the arrays once per process (:func:`inference_model`, a cache keyed
by path) and reuse them across tiles. When no member needs the reference, workers do not
load the skops model at all.

Exactness: the feature matrix is float32 (``predict_tile``). The kernel's comparisons are
exact (see :mod:`fluxscape.ml.forest`) and it sums the trees in the reference's order, so
its predictions equal the reference's bit for bit; the tl2cgen libraries keep the models'
float64 thresholds, equal to float64 rounding (tests assert 1e-9). tl2cgen 1.0 reads a
float64 whose low 32 bits are all ones as missing; values widened from float32 have their
low 29 bits zero, so no valid row can be mistaken for a missing one.

When nothing can be compiled (every member unsupported and no C compiler, treelite or
tl2cgen, or a compile error) the whole model falls back to the reference with a logged
warning.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from fluxscape.errors import FluxscapeError
from fluxscape.ml import forest, persist

__all__ = [
    "MAX_NODES",
    "CompiledFluxModel",
    "CompileError",
    "cache_dir",
    "compile_model",
    "inference_model",
    "load_compiled",
    "prepare",
]

log = logging.getLogger(__name__)

#: Version of the cache layout (part of the key).
FORMAT = 2
#: gcc flags after tl2cgen's own ``-O3``: -O1 runs the generated if-else trees as fast as
#: -O3 (measured on the demo's members: within run-to-run noise) in a quarter of the time.
COMPILER_OPTIONS = ("-O1",)
#: tl2cgen code generation: quantised comparisons (1.6-2.2x faster than float ones on the
#: demo's members, exact) and the trees of a member split over two translation units.
CODEGEN_PARAMS = {"quantize": 1, "parallel_comp": 2}
#: Members that the flat kernel cannot take and that have more tree nodes stay on the
#: reference predictor: tl2cgen's code of deep forests outgrows the instruction cache (it
#: runs slower than scikit-learn's own tree walk) and gcc takes minutes on it.
MAX_NODES = 40_000

#: Members compiled by this process (tests assert that a cache is reused).
compile_count = 0
#: The flat members of a model, in the cache folder.
FOREST_FILE = "forest.npz"


class CompileError(FluxscapeError):
    """The model cannot be compiled here (no compiler, no tl2cgen, a failed build)."""


# --- the cache key -----------------------------------------------------------------------------


def _compiler() -> str:
    """Path and first version line of the C compiler tl2cgen calls (``CC``, default gcc);
    CompileError when there is none."""
    cc = os.environ.get("CC", "gcc")
    path = shutil.which(cc)
    if path is None:
        raise CompileError(f"no C compiler {cc!r} on PATH (install gcc to compile models)")
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise CompileError(f"C compiler {path} does not run ({exc})") from exc
    return f"{path} {out.stdout.splitlines()[0] if out.stdout else ''}".strip()


def _cpu_flags() -> str:
    """A digest of this CPU's feature flags (``/proc/cpuinfo``; the machine type elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                return hashlib.sha256(flags.encode()).hexdigest()[:12]
    except OSError:
        pass
    return platform.machine()


def _lib_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _compiler_or_none() -> str | None:
    try:
        return _compiler()
    except CompileError:
        return None


@functools.cache
def _environment() -> dict:
    """What the compiled members depend on besides the model (part of the cache key); None
    for a library or compiler that is not there (its members are not compiled)."""
    return {
        "format": FORMAT,
        "numba": _lib_version("numba"),
        "kernel": {"lanes": forest.LANES, "block": forest.BLOCK},
        "treelite": _lib_version("treelite"),
        "tl2cgen": _lib_version("tl2cgen"),
        "compiler": _compiler_or_none(),
        "options": list(COMPILER_OPTIONS),
        "params": CODEGEN_PARAMS,
        "max_nodes": MAX_NODES,
        "cpu": _cpu_flags(),
        "machine": platform.machine(),
    }


def cache_dir(model_path: str | Path, card_id: str) -> Path:
    """The folder of the compiled members of the model at ``model_path`` with card
    ``card_id``: ``<model>.compiled/<key>``."""
    model_path = Path(model_path)
    body = json.dumps({"card_id": card_id, **_environment()}, sort_keys=True)
    key = hashlib.sha256(body.encode()).hexdigest()[:16]
    return model_path.with_name(model_path.name + ".compiled") / key


# --- compiling ---------------------------------------------------------------------------------


def _node_count(est) -> int:
    """Tree nodes of a member (LightGBM: the bound 2 x leaves - 1 per tree)."""
    kind = type(est).__name__
    if kind == "RandomForestRegressor":
        return int(sum(t.tree_.node_count for t in est.estimators_))
    if kind == "HistGradientBoostingRegressor":
        return int(sum(len(p.nodes) for it in est._predictors for p in it))
    if kind == "LGBMRegressor":
        leaves = int(est.get_params().get("num_leaves") or 31)
        return int(est.booster_.num_trees()) * (2 * leaves - 1)
    raise CompileError(f"no compiled runtime for a {kind}")


def _treelite_model(est):
    """The treelite model of one member; CompileError for a type treelite cannot import."""
    import treelite

    kind = type(est).__name__
    try:
        if kind in ("RandomForestRegressor", "HistGradientBoostingRegressor"):
            return treelite.sklearn.import_model(est)
        if kind == "LGBMRegressor":
            return treelite.frontend.from_lightgbm(est.booster_)
    except Exception as exc:  # treelite raises its own errors for unsupported settings
        raise CompileError(f"treelite cannot import a {kind}: {exc}") from exc
    raise CompileError(f"no compiled runtime for a {kind}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _compile_member(est, libpath: Path) -> None:
    """Build the library of one member at ``libpath``. tl2cgen prints its native log to
    stdout (which ``fluxscape run --json`` keeps for its document) and warns through Python
    warnings (e.g. its bundled treelite reading a newer treelite's model): both go to this
    module's debug log."""
    global compile_count
    _compiler()  # CompileError when there is none
    for lib in ("treelite", "tl2cgen"):
        if _lib_version(lib) is None:
            raise CompileError(f"{lib} is not installed")
    import tl2cgen

    said = io.StringIO()
    with contextlib.redirect_stdout(said), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tm = _treelite_model(est)
        try:
            tl2cgen.export_lib(
                tm,
                toolchain=os.environ.get("CC", "gcc"),
                libpath=str(libpath),
                params=dict(CODEGEN_PARAMS),
                options=list(COMPILER_OPTIONS),
                nthread=CODEGEN_PARAMS["parallel_comp"],
            )
        except Exception as exc:  # tl2cgen raises TL2cgenError or a CalledProcessError
            raise CompileError(f"compiling a {type(est).__name__} failed: {exc}") from exc
    for line in said.getvalue().splitlines() + [str(w.message) for w in caught]:
        if line.strip():
            log.debug("tl2cgen: %s", line.strip())
    compile_count += 1


def _tl2cgen_entry(est, target: str, label: str, i: int, tmp: Path) -> dict:
    """The manifest entry of a member the flat kernel cannot take: a tl2cgen library in
    ``tmp``, or the reference predictor (over :data:`MAX_NODES` nodes, or not compilable
    here: logged)."""
    try:
        nodes = _node_count(est)
        if nodes > MAX_NODES:
            return {"runtime": "reference", "nodes": nodes}
        name = f"{target}_{i}.so"
        _compile_member(est, tmp / name)
    except CompileError as exc:
        log.warning("%s %s: %s; it keeps the reference predictor", target, label, exc)
        return {"runtime": "reference"}
    return {"runtime": "tl2cgen", "lib": name, "nodes": nodes, "sha256": _sha256(tmp / name)}


def compile_model(model, model_path: str | Path, card: dict) -> Path:
    """Compile every member of ``model`` (a fitted FluxModel saved at ``model_path`` with
    ``card``) into ``cache_dir(model_path, card_id)``; returns that folder.

    A folder whose manifest and files check out is reused (nothing compiled). Members go to
    the flat kernel (``forest.npz``), else to a tl2cgen library, else stay ``reference``
    (see the module docstring). Files are built in a temporary folder beside the cache and
    renamed into place under a file lock, so two processes never see a half-written cache.
    Raises CompileError when no member can be compiled here.
    """
    global compile_count
    from filelock import FileLock

    target_dir = cache_dir(model_path, card["card_id"])
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target_dir) + ".lock"):
        if _read_manifest(target_dir, card) is not None:
            return target_dir
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=target_dir.parent))
        try:
            members: dict[str, list[dict]] = {}
            flat: list[forest.FlatForest] = []
            for target, ens in model.ensembles_.items():
                members[target] = []
                for i, (label, est) in enumerate(
                    zip(ens.member_labels_, ens.members_, strict=True)
                ):
                    entry = {"label": label, "type": type(est).__name__}
                    try:
                        ff = forest.flatten(est)
                    except forest.UnsupportedModel as exc:
                        log.info("%s %s: %s; trying tl2cgen", target, label, exc)
                        members[target].append(entry | _tl2cgen_entry(est, target, label, i, tmp))
                        continue
                    members[target].append(
                        entry | {"runtime": "numba", "index": len(flat), "nodes": ff.n_nodes}
                    )
                    flat.append(ff)
                    compile_count += 1
            if not any(m["runtime"] != "reference" for ms in members.values() for m in ms):
                raise CompileError("no member of the model can be compiled here")
            manifest = {
                "card_id": card["card_id"],
                "features": list(model.features),
                "targets": list(model.ensembles_),
                "members": members,
                "environment": _environment(),
            }
            if flat:
                forest.FlatEnsemble.build(flat).save(tmp / FOREST_FILE)
                forest.warm_up()  # numba's on-disk cache, once, before any worker
                manifest["forest"] = {"file": FOREST_FILE, "sha256": _sha256(tmp / FOREST_FILE)}
            manifest["compile_s"] = round(time.perf_counter() - t0, 1)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
            if target_dir.exists():  # a corrupted cache: replaced whole
                shutil.rmtree(target_dir)
            os.replace(tmp, target_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _drop_stale(target_dir.parent, card["card_id"])
    runtimes = [m["runtime"] for ms in members.values() for m in ms]
    log.info(
        "compiled model %s in %.1f s: %d member(s) flat (numba), %d tl2cgen, %d reference (%s)",
        card["card_id"],
        manifest["compile_s"],
        runtimes.count("numba"),
        runtimes.count("tl2cgen"),
        runtimes.count("reference"),
        target_dir,
    )
    return target_dir


def _drop_stale(parent: Path, card_id: str) -> None:
    """Remove the caches of other model cards (a retrained model); caches of this card for
    other environments (another CPU or compiler on a cluster) are kept."""
    for folder in parent.iterdir():
        if not folder.is_dir() or folder.name.startswith(".building-"):
            continue
        try:
            other = json.loads((folder / "manifest.json").read_text()).get("card_id")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue  # being built, or corrupted: its own card's compile replaces it
        if other != card_id:
            shutil.rmtree(folder, ignore_errors=True)
            Path(str(folder) + ".lock").unlink(missing_ok=True)


# --- loading -----------------------------------------------------------------------------------


def _read_manifest(folder: Path, card: dict) -> dict | None:
    """The manifest of a cache folder when it belongs to ``card`` and every library it lists
    is there with its recorded sha256; None otherwise (missing, corrupted, stale)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(manifest, dict) or manifest.get("card_id") != card.get("card_id"):
        return None
    try:
        for entries in manifest["members"].values():
            for m in entries:
                if m["runtime"] == "tl2cgen" and _sha256(folder / m["lib"]) != m["sha256"]:
                    return None
                if m["runtime"] == "numba" and "forest" not in manifest:
                    return None
        if "forest" in manifest:
            f = manifest["forest"]
            if _sha256(folder / f["file"]) != f["sha256"]:
                return None
    except (OSError, KeyError, TypeError, AttributeError):
        return None
    return manifest


class _Library:
    """One compiled member: float32 rows (n, n_features) C-order -> float64 (n,)."""

    def __init__(self, path: Path, n_features: int):
        import tl2cgen

        self.path = path
        self.predictor = tl2cgen.Predictor(str(path), nthread=1)
        if self.predictor.num_feature != n_features:
            raise CompileError(
                f"{path}: compiled for {self.predictor.num_feature} features, not {n_features}"
            )

    def __call__(self, X: np.ndarray, Xq: np.ndarray | None = None) -> np.ndarray:
        import tl2cgen

        out = self.predictor.predict(tl2cgen.DMatrix(X))
        return np.asarray(out, dtype=np.float64).reshape(len(X))


class _FlatMember:
    """One member in the flat kernel: float32 rows (n, n_features) C-order (and their
    quantised ranks, shared by the members) -> float64 (n,)."""

    def __init__(self, flat: forest.FlatEnsemble, index: int):
        self.flat = flat
        self.index = index

    def __call__(self, X: np.ndarray, Xq: np.ndarray | None = None) -> np.ndarray:
        return self.flat.predict(self.index, X, Xq)


def _reference_member(est) -> Callable[..., np.ndarray]:
    def run(X: np.ndarray, Xq: np.ndarray | None = None) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            return np.asarray(est.predict(X), dtype=np.float64)

    return run


@dataclass
class CompiledFluxModel:
    """A FluxModel's ensembles as compiled libraries (and reference members where a member
    is not compiled); ``predict_with_sd`` is the FluxModel's: the mean and the standard
    deviation (ddof=1) across members of each target.

    ``features``: ordered names; ``targets``; ``members``: {target: [callable float32 rows ->
    float64 predictions]}; ``runtimes``: {target: ["numba" | "tl2cgen" | "reference",
    ...]}; ``folder``: the cache folder; ``flat``: the flat members' FlatEnsemble (its
    quantisation of the rows is computed once per call and shared)."""

    features: tuple[str, ...]
    targets: tuple[str, ...]
    members: dict[str, list[Callable[..., np.ndarray]]]
    runtimes: dict[str, list[str]] = field(default_factory=dict)
    folder: Path | None = None
    flat: forest.FlatEnsemble | None = None

    def _rows(self, X) -> tuple[np.ndarray, np.ndarray | None]:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise FluxscapeError(
                f"X has shape {X.shape}; the model was trained on {len(self.features)} features"
            )
        return X, (self.flat.quantise(X) if self.flat is not None else None)

    def member_predictions(self, target: str, X, _Xq: np.ndarray | None = None) -> np.ndarray:
        """Predictions of every member of ``target``, shape (n_members, n_rows); ``X``
        (n_rows, n_features) is converted to float32 C-order when it is not."""
        if _Xq is None:
            X, _Xq = self._rows(X)
        return np.stack([run(X, _Xq) for run in self.members[target]])

    def predict_with_sd(self, X) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{target: (mean, sd)} over the members, each (n_rows,) float64."""
        X, Xq = self._rows(X)
        out = {}
        for t in self.targets:
            p = self.member_predictions(t, X, Xq)
            sd = p.std(axis=0, ddof=1) if len(p) > 1 else np.zeros(p.shape[1])
            out[t] = (p.mean(axis=0), sd)
        return out


def load_compiled(model_path: str | Path, card: dict, reference=None) -> CompiledFluxModel | None:
    """The compiled model of ``model_path`` from its cache, or None when the cache is
    missing or does not check out (then :func:`compile_model` rebuilds it).

    ``reference``: the loaded FluxModel, needed only when a member was left on the
    reference predictor; without it such a cache gives None."""
    folder = cache_dir(model_path, card["card_id"])
    manifest = _read_manifest(folder, card)
    if manifest is None:
        return None
    features = tuple(manifest["features"])
    flat = None
    if "forest" in manifest:
        flat = forest.FlatEnsemble.load(folder / manifest["forest"]["file"])
    members: dict[str, list] = {}
    runtimes: dict[str, list[str]] = {}
    for t in manifest["targets"]:
        members[t], runtimes[t] = [], []
        for i, m in enumerate(manifest["members"][t]):
            if m["runtime"] == "numba":
                members[t].append(_FlatMember(flat, m["index"]))
            elif m["runtime"] == "tl2cgen":
                members[t].append(_Library(folder / m["lib"], len(features)))
            elif reference is None:
                return None
            else:
                members[t].append(_reference_member(reference.ensembles_[t].members_[i]))
            runtimes[t].append(m["runtime"])
    return CompiledFluxModel(features, tuple(manifest["targets"]), members, runtimes, folder, flat)


def _needs_reference(model_path: Path, card: dict) -> bool:
    manifest = _read_manifest(cache_dir(model_path, card["card_id"]), card)
    return manifest is None or any(
        m["runtime"] == "reference" for ms in manifest["members"].values() for m in ms
    )


#: From bench/upscale.py (2026-12-07, two loaded cores): a flat member saves about 30 ns per
#: tree and row against its library's own predict (demo: 39 ns bare, 6 ns compiled), and
#: flattening costs about 10 us per tree node (the LightGBM model string parsed, the trees
#: renumbered). ``inference: auto`` compiles only where the saving beats the cost.
SAVED_S_PER_TREE_ROW = 30e-9
COMPILE_S_PER_NODE = 10e-6


def _tree_count(est) -> int:
    """Trees of a member (gradient boosting: one per iteration)."""
    kind = type(est).__name__
    if kind == "RandomForestRegressor":
        return len(est.estimators_)
    if kind == "HistGradientBoostingRegressor":
        return int(est.n_iter_)
    if kind == "LGBMRegressor":
        return int(est.booster_.num_trees())
    return 0


def worth_compiling(model_path: str | Path, rows: int, model=None) -> tuple[bool, str]:
    """Whether compiling the model at ``model_path`` pays for itself on ``rows`` predicted
    rows (pixels x periods): True when its libraries are already cached, else when the
    estimated prediction time saved (:data:`SAVED_S_PER_TREE_ROW` per tree and row) exceeds
    the estimated compile time (:data:`COMPILE_S_PER_NODE`).
    ``model``: the fitted FluxModel when at hand (else it is loaded). Returns the decision
    and a one-line reason with both estimates."""
    model_path = Path(model_path)
    card = persist.read_card(model_path)
    if _read_manifest(cache_dir(model_path, card["card_id"]), card) is not None:
        return True, "its compiled libraries are cached"
    if model is None:
        model, card = persist.load_model(model_path)
    trees = nodes = 0
    for ens in model.ensembles_.values():
        for est in ens.members_:
            try:
                nodes += _node_count(est)
            except CompileError:
                continue
            trees += _tree_count(est)
    saved = rows * trees * SAVED_S_PER_TREE_ROW
    cost = nodes * COMPILE_S_PER_NODE
    verdict = "compiling" if saved > cost else "not compiling"
    why = (
        f"{verdict}: {rows:,} rows x {trees:,} trees would save about {saved:.0f} s of "
        f"prediction, compiling {nodes:,} nodes costs about {cost:.0f} s"
    )
    return saved > cost, why


def prepare(model_path: str | Path, model=None) -> str:
    """Make the compiled libraries of the model at ``model_path`` ready (in the driver,
    before any tile): reuse the cache, or compile (loading the skops model when ``model`` is
    not given). Returns the inference mode the tiles use: "compiled", or "reference" (with a
    logged warning) when compiling is impossible here."""
    model_path = Path(model_path)
    card = persist.read_card(model_path)
    try:
        folder = cache_dir(model_path, card["card_id"])
        if _read_manifest(folder, card) is None:
            if model is None:
                model, card = persist.load_model(model_path)
            compile_model(model, model_path, card)
    except CompileError as exc:
        log.warning(
            "%s: cannot compile the model (%s); predicting with the reference model",
            model_path,
            exc,
        )
        return "reference"
    return "compiled"


@functools.lru_cache(maxsize=8)
def _inference_model(path: str, mtime_ns: int, mode: str):
    model_path = Path(path)
    if mode == "reference":
        return persist.load_model(model_path)[0]
    card = persist.read_card(model_path)
    reference = None
    try:
        if _needs_reference(model_path, card):
            reference, card = persist.load_model(model_path)
        compiled = load_compiled(model_path, card, reference)
        if compiled is None:  # missing or corrupted cache: compile again
            compile_model(reference, model_path, card)
            compiled = load_compiled(model_path, card, reference)
        if compiled is None:
            raise CompileError(
                f"{cache_dir(model_path, card['card_id'])}: unusable after compiling"
            )
    except CompileError as exc:
        log.warning(
            "%s: cannot use compiled inference (%s); predicting with the reference model", path, exc
        )
        return reference if reference is not None else persist.load_model(model_path)[0]
    return compiled


def inference_model(model_path: str | Path, mode: str = "compiled"):
    """The predictor of the model saved at ``model_path`` for ``mode`` ("compiled" or
    "reference"), loaded once per process and reused (keyed by path, modification time and
    mode). Compiled: a :class:`CompiledFluxModel` from the cache (recompiled when the cache is
    missing or corrupted; the skops model loaded only when a member needs it); the
    reference FluxModel when compiling is impossible (logged warning). Both have
    ``features``, ``targets`` and ``predict_with_sd``."""
    if mode not in ("compiled", "reference"):
        raise FluxscapeError(f"unknown inference mode {mode!r}; use compiled or reference")
    path = Path(model_path)
    return _inference_model(str(path), path.stat().st_mtime_ns, mode)
