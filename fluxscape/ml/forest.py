"""Flat-array tree ensembles and a branchless, row-interleaved traversal kernel (numba).

A member (scikit-learn RandomForestRegressor or HistGradientBoostingRegressor, LightGBM
LGBMRegressor; numeric splits ``x <= threshold`` only) becomes a :class:`FlatForest`: every
tree's nodes renumbered breadth-first so that the two children of a node are adjacent
(``child``, ``child + 1``), and each leaf a self-loop, so every tree is walked a fixed
number of steps (its depth) with no data-dependent branch:
``node = child[node] + (x[feature[node]] > threshold[node])``. A :class:`FlatEnsemble`
quantises the features once for all its members (each value replaced by the number of the
model's distinct thresholds of that feature below it) and packs each node into one uint64
word (threshold rank, child, feature), so a step is one word load, one rank load and an
integer compare. The kernel walks :data:`LANES` rows in lockstep per tree (their
independent load chains overlap in the CPU) over blocks of :data:`BLOCK` rows (the tree's
nodes and the rows stay in cache); its indices are unsigned (numba's negative-index
wraparound on every load cost 1.8x).

Hand-written because no maintained runtime reaches the speed needed here in this
environment: tl2cgen's if-else code is bound by branch mispredictions (2.3x the libraries'
own predict, bench/upscale.py) and its compile time explodes on deep forests; lleaves
needs an llvmlite that conflicts with numba's pin; onnxruntime's tree ensemble ran 1.5x.

Exactness: a float32 ``x`` satisfies ``x <= t`` (compared in float64) exactly when
``x <= t32``, ``t32`` the largest float32 not above ``t``; ranks among the sorted distinct
``t32`` preserve that order, so every row takes the reference model's path. Leaf values are
float64 and summed in the reference's tree order from the reference's starting value
(HistGradientBoosting: its baseline), then divided by the number of trees for a forest: the
predictions equal the reference's bit for bit (tests assert equality). Rows with a NaN take
the reference's missing-value direction of each split (walked one by one by
``_predict_rows_nan``); infinities compare as numbers, as in LightGBM. Models outside this
(categorical splits, LightGBM zero-as-missing, linear trees, non-identity output
transforms, multi-output trees, more than 256 features or 2**24 nodes a member) raise
:class:`UnsupportedModel`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from numba import njit

from fluxscape.errors import FluxscapeError

__all__ = [
    "BLOCK",
    "LANES",
    "FlatEnsemble",
    "FlatForest",
    "UnsupportedModel",
    "flatten",
    "predict_member",
]

#: Rows walked in lockstep through one tree (the kernel is written out for this many).
LANES = 8
#: Rows per block: every tree of the member is walked over one block before the next.
BLOCK = 256

_JIT = {"cache": True, "nogil": True}


class UnsupportedModel(FluxscapeError):
    """The member uses a feature the flat kernel does not implement (it keeps another
    runtime)."""


@dataclass
class FlatForest:
    """One member as flat arrays (n_nodes over all trees, n_trees trees).

    ``feature`` int32, ``threshold`` float32 (rounded toward -inf; +inf at leaves),
    ``child`` int32 (left child; right = left + 1; a leaf points to itself), ``nan_right``
    uint8 (1 where a NaN goes right), ``value`` float64 (leaf values, 0 elsewhere);
    ``roots``, ``depths`` int32 per tree; ``base`` (start of the sum) and ``divisor`` (1, or
    the number of trees of a forest); ``n_features``."""

    feature: np.ndarray
    threshold: np.ndarray
    child: np.ndarray
    nan_right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depths: np.ndarray
    base: float
    divisor: float
    n_features: int

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything as named numpy arrays (for ``np.savez``)."""
        return {
            "feature": self.feature,
            "threshold": self.threshold,
            "child": self.child,
            "nan_right": self.nan_right,
            "value": self.value,
            "roots": self.roots,
            "depths": self.depths,
            "scalars": np.array([self.base, self.divisor, self.n_features], np.float64),
        }

    @classmethod
    def from_arrays(cls, a) -> FlatForest:
        """Inverse of :meth:`arrays` (e.g. an ``np.load`` of the saved file)."""
        base, divisor, n_features = (float(v) for v in a["scalars"])
        return cls(
            np.ascontiguousarray(a["feature"], np.int32),
            np.ascontiguousarray(a["threshold"], np.float32),
            np.ascontiguousarray(a["child"], np.int32),
            np.ascontiguousarray(a["nan_right"], np.uint8),
            np.ascontiguousarray(a["value"], np.float64),
            np.ascontiguousarray(a["roots"], np.int32),
            np.ascontiguousarray(a["depths"], np.int32),
            base,
            divisor,
            int(n_features),
        )

    @property
    def n_nodes(self) -> int:
        return int(self.feature.size)


# --- building --------------------------------------------------------------------------------


def _round_down_f32(t: np.ndarray) -> np.ndarray:
    """float64 thresholds -> the largest float32 <= each (exact ``x <= t`` for float32 x)."""
    t = np.asarray(t, np.float64)
    with np.errstate(over="ignore"):
        t32 = t.astype(np.float32)
    over = t32.astype(np.float64) > t
    t32[over] = np.nextafter(t32[over], np.float32(-np.inf))
    return t32


@njit(**_JIT)
def _renumber(left, right, n_out):
    """Breadth-first order of one tree (old node 0 = root) with siblings adjacent: returns
    (order: old id of each new id, child: new id of each new node's left child or itself
    for a leaf, depth of the tree). ``left``/``right``: -1 at leaves."""
    order = np.empty(n_out, np.int64)
    child = np.empty(n_out, np.int32)
    level = np.zeros(n_out, np.int32)
    order[0] = 0
    filled = 1
    depth = 0
    for i in range(n_out):
        if i >= filled:
            break
        old = order[i]
        if left[old] < 0:
            child[i] = i
        else:
            if filled + 2 > n_out:  # a node reached twice: not a tree
                return order[:0], child[:0], -1
            child[i] = filled
            order[filled] = left[old]
            order[filled + 1] = right[old]
            level[filled] = level[i] + 1
            level[filled + 1] = level[i] + 1
            if level[i] + 1 > depth:
                depth = level[i] + 1
            filled += 2
    return order[:filled], child[:filled], depth


class _Builder:
    """Accumulates trees (each in its own node numbering, root 0) into flat arrays."""

    def __init__(self):
        self.parts: list[tuple] = []
        self.offset = 0

    def add(self, left, right, feature, threshold, value, nan_left) -> None:
        """One tree: per node ``left``/``right`` child (-1 at a leaf), ``feature``,
        ``threshold`` (float64), leaf ``value``, ``nan_left`` (bool, a NaN goes left)."""
        left = np.asarray(left, np.int64)
        right = np.asarray(right, np.int64)
        n = len(left)
        # the kernel does not check bounds: a malformed tree must not reach it
        if not (
            len(right) == n
            and ((left == -1) == (right == -1)).all()
            and ((left >= -1) & (left < n) & (right >= -1) & (right < n)).all()
        ):
            raise FluxscapeError("a tree with child indices out of range")
        order, child, depth = _renumber(left, right, n)
        if len(order) != n:
            raise FluxscapeError("a tree with unreachable or shared nodes")
        if (np.asarray(feature)[left >= 0] < 0).any():
            raise FluxscapeError("a split node without a feature")
        leaf = left[order] < 0
        thr = _round_down_f32(np.asarray(threshold, np.float64)[order])
        thr[leaf] = np.inf
        feat = np.asarray(feature, np.int64)[order].astype(np.int32)
        feat[leaf] = 0
        val = np.where(leaf, np.asarray(value, np.float64)[order], 0.0)
        nan_right = (~np.asarray(nan_left, bool)[order] & ~leaf).astype(np.uint8)
        self.parts.append((feat, thr, child + self.offset, nan_right, val, self.offset, depth))
        self.offset += len(order)

    def build(self, base: float, divisor: float, n_features: int) -> FlatForest:
        if not self.parts:
            raise UnsupportedModel("a model without trees")
        cat = [np.concatenate([p[i] for p in self.parts]) for i in range(5)]
        if cat[0].size and (cat[0].min() < 0 or cat[0].max() >= n_features):
            raise FluxscapeError(f"a split on a feature outside 0..{n_features - 1}")
        return FlatForest(
            cat[0].astype(np.int32),
            cat[1].astype(np.float32),
            cat[2].astype(np.int32),
            cat[3].astype(np.uint8),
            cat[4].astype(np.float64),
            np.array([p[5] for p in self.parts], np.int32),
            np.array([p[6] for p in self.parts], np.int32),
            float(base),
            float(divisor),
            int(n_features),
        )


def _from_random_forest(est) -> FlatForest:
    b = _Builder()
    for tree in est.estimators_:
        t = tree.tree_
        if t.n_outputs != 1:
            raise UnsupportedModel("a multi-output forest")
        missing_left = getattr(t, "missing_go_to_left", np.ones(t.node_count, np.uint8))
        b.add(
            t.children_left,
            t.children_right,
            t.feature,
            t.threshold,
            t.value[:, 0, 0],
            np.asarray(missing_left, bool),
        )
    return b.build(0.0, len(est.estimators_), est.n_features_in_)


def _from_hist_gradient_boosting(est) -> FlatForest:
    loss = getattr(est, "loss", "squared_error")
    if loss not in ("squared_error", "absolute_error", "quantile"):
        raise UnsupportedModel(f"a HistGradientBoostingRegressor with loss {loss!r}")
    if np.asarray(est._baseline_prediction).size != 1:
        raise UnsupportedModel("a multi-output HistGradientBoostingRegressor")
    b = _Builder()
    for predictors in est._predictors:
        nodes = predictors[0].nodes
        if nodes["is_categorical"].any():
            raise UnsupportedModel("categorical splits")
        is_leaf = nodes["is_leaf"].astype(bool)
        b.add(
            np.where(is_leaf, -1, nodes["left"].astype(np.int64)),
            np.where(is_leaf, -1, nodes["right"].astype(np.int64)),
            nodes["feature_idx"],
            nodes["num_threshold"],
            nodes["value"],
            nodes["missing_go_to_left"].astype(bool),
        )
    return b.build(float(np.asarray(est._baseline_prediction).ravel()[0]), 1.0, est.n_features_in_)


#: LightGBM objectives whose prediction is the raw score (no output transform).
_LGBM_IDENTITY = ("regression", "regression_l1", "huber", "fair", "quantile", "mape")


def _from_lightgbm(est) -> FlatForest:
    """From the booster's model string (thresholds written with 17 significant digits, so
    they read back exactly); the trees ``predict`` uses (best iteration, when set)."""
    text = est.booster_.model_to_string()
    head = text.split("\nTree=", 1)[0]
    objective = re.search(r"^objective=(\S+)", head, re.M)
    if objective is None or objective.group(1) not in _LGBM_IDENTITY:
        raise UnsupportedModel(f"LightGBM objective {objective and objective.group(1)!r}")
    if re.search(r"^average_output", head, re.M):
        raise UnsupportedModel("LightGBM random-forest mode (average_output)")
    n_features = int(re.search(r"^max_feature_idx=(\d+)", head, re.M).group(1)) + 1
    b = _Builder()
    for block in re.split(r"\nTree=\d+\n", text)[1:]:
        block = block.split("\nend of trees", 1)[0]
        kv = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if kv.get("is_linear", "0") != "0":
            raise UnsupportedModel("LightGBM linear trees")
        if int(kv.get("num_cat", "0")) != 0:
            raise UnsupportedModel("LightGBM categorical splits")
        leaf_value = np.array(kv["leaf_value"].split(), np.float64)
        n_leaves = int(kv["num_leaves"])
        if n_leaves == 1:
            b.add([-1], [-1], [0], [0.0], leaf_value[:1], [True])
            continue
        feature = np.array(kv["split_feature"].split(), np.int64)
        threshold = np.array(kv["threshold"].split(), np.float64)
        decision = np.array(kv["decision_type"].split(), np.int64)
        left_c = np.array(kv["left_child"].split(), np.int64)
        right_c = np.array(kv["right_child"].split(), np.int64)
        if (decision & 1).any():
            raise UnsupportedModel("LightGBM categorical splits")
        missing = (decision >> 2) & 3  # 0 none, 1 zero, 2 NaN
        if (missing == 1).any():
            raise UnsupportedModel("LightGBM zero-as-missing splits")
        default_left = (decision & 2).astype(bool)
        # LightGBM: NaN is the split's default direction when missing type is NaN, else
        # it is read as 0.0 and compared.
        nan_left = np.where(missing == 2, default_left, 0.0 <= threshold)
        n_int = len(feature)
        # internal nodes 0..n_int-1, leaves n_int + leaf index (a child < 0 is leaf ~child)
        left_id = np.where(left_c >= 0, left_c, n_int + ~left_c)
        right_id = np.where(right_c >= 0, right_c, n_int + ~right_c)
        b.add(
            np.concatenate([left_id, np.full(n_leaves, -1)]),
            np.concatenate([right_id, np.full(n_leaves, -1)]),
            np.concatenate([feature, np.zeros(n_leaves, np.int64)]),
            np.concatenate([threshold, np.zeros(n_leaves)]),
            np.concatenate([np.zeros(n_int), leaf_value]),
            np.concatenate([nan_left, np.ones(n_leaves, bool)]),
        )
    return b.build(0.0, 1.0, n_features)


def flatten(est) -> FlatForest:
    """The :class:`FlatForest` of one fitted member; UnsupportedModel for any other type or
    setting (see the module docstring)."""
    kind = type(est).__name__
    build = {
        "RandomForestRegressor": _from_random_forest,
        "HistGradientBoostingRegressor": _from_hist_gradient_boosting,
        "LGBMRegressor": _from_lightgbm,
    }.get(kind)
    if build is None:
        raise UnsupportedModel(f"no flat kernel for a {kind}")
    flat = build(est)
    if flat.n_features - 1 > _MAX_FEATURE:
        raise UnsupportedModel(f"{flat.n_features} features (the kernel holds {_MAX_FEATURE + 1})")
    if flat.n_nodes - 1 > _MAX_CHILD:
        raise UnsupportedModel(
            f"a member of {flat.n_nodes:,} nodes (the kernel holds {_MAX_CHILD + 1:,})"
        )
    return flat


def warm_up() -> None:
    """Compile the kernel for the types :meth:`FlatEnsemble.predict` uses (or load it from
    numba's on-disk cache): one tiny forest, two rows, one with a NaN."""
    b = _Builder()
    b.add([1, -1, -1], [2, -1, -1], [0, 0, 0], [0.5, 0, 0], [0.0, 1.0, 2.0], [True] * 3)
    X = np.array([[0.0], [np.nan]], np.float32)
    FlatEnsemble.build([b.build(0.0, 1.0, 1)]).predict(0, X)


# --- predicting ------------------------------------------------------------------------------


@njit(**_JIT)
def _walk_tree(Xq, nf, r0, r1, word, value, root, depth, out):
    """Add one tree's leaf values to ``out[r0:r1]``. ``Xq``: the quantised rows, flat
    (row-major, uint32, ``nf`` (uint64) a row); ``word``: uint64 node words (threshold rank
    << 32 | child << 8 | feature). LANES rows walk in lockstep (written out: numba keeps
    them in registers), ``depth`` branch-free steps each; the rows left over one by one.
    Indices are unsigned: numba then skips its negative-index wraparound, which made the
    walk 1.8x slower."""
    u8 = np.uint64(8)
    u32 = np.uint64(32)
    mask_child = np.uint64(0xFFFFFF)
    mask_feature = np.uint64(0xFF)
    top = np.uint64(root)
    full = r0 + (r1 - r0) // LANES * LANES
    for s0 in range(r0, full, LANES):
        n0 = top
        n1 = top
        n2 = top
        n3 = top
        n4 = top
        n5 = top
        n6 = top
        n7 = top
        o0 = np.uint64(s0 + 0) * nf
        o1 = np.uint64(s0 + 1) * nf
        o2 = np.uint64(s0 + 2) * nf
        o3 = np.uint64(s0 + 3) * nf
        o4 = np.uint64(s0 + 4) * nf
        o5 = np.uint64(s0 + 5) * nf
        o6 = np.uint64(s0 + 6) * nf
        o7 = np.uint64(s0 + 7) * nf
        for _ in range(depth):
            w0 = word[n0]
            w1 = word[n1]
            w2 = word[n2]
            w3 = word[n3]
            w4 = word[n4]
            w5 = word[n5]
            w6 = word[n6]
            w7 = word[n7]
            n0 = ((w0 >> u8) & mask_child) + np.uint64(Xq[o0 + (w0 & mask_feature)] > (w0 >> u32))
            n1 = ((w1 >> u8) & mask_child) + np.uint64(Xq[o1 + (w1 & mask_feature)] > (w1 >> u32))
            n2 = ((w2 >> u8) & mask_child) + np.uint64(Xq[o2 + (w2 & mask_feature)] > (w2 >> u32))
            n3 = ((w3 >> u8) & mask_child) + np.uint64(Xq[o3 + (w3 & mask_feature)] > (w3 >> u32))
            n4 = ((w4 >> u8) & mask_child) + np.uint64(Xq[o4 + (w4 & mask_feature)] > (w4 >> u32))
            n5 = ((w5 >> u8) & mask_child) + np.uint64(Xq[o5 + (w5 & mask_feature)] > (w5 >> u32))
            n6 = ((w6 >> u8) & mask_child) + np.uint64(Xq[o6 + (w6 & mask_feature)] > (w6 >> u32))
            n7 = ((w7 >> u8) & mask_child) + np.uint64(Xq[o7 + (w7 & mask_feature)] > (w7 >> u32))
        out[s0 + 0] += value[n0]
        out[s0 + 1] += value[n1]
        out[s0 + 2] += value[n2]
        out[s0 + 3] += value[n3]
        out[s0 + 4] += value[n4]
        out[s0 + 5] += value[n5]
        out[s0 + 6] += value[n6]
        out[s0 + 7] += value[n7]
    for r in range(full, r1):
        n = top
        o = np.uint64(r) * nf
        for _ in range(depth):
            w = word[n]
            n = ((w >> u8) & mask_child) + np.uint64(Xq[o + (w & mask_feature)] > (w >> u32))
        out[r] += value[n]


@njit(**_JIT)
def _predict_quantised(Xq, nf, n, word, value, roots, depths, base, divisor, out):
    """Rows ``0..n-1`` of the flat quantised ``Xq`` -> ``out`` (float64): the sum over the
    trees (in order, from ``base``) divided by ``divisor``. Tree by tree over blocks of
    BLOCK rows, so one tree's nodes and the block's rows stay in cache."""
    for r in range(n):
        out[r] = base
    for b0 in range(0, n, BLOCK):
        b1 = min(n, b0 + BLOCK)
        for t in range(roots.size):
            _walk_tree(Xq, nf, b0, b1, word, value, roots[t], depths[t], out)
    if divisor != 1.0:
        for r in range(n):
            out[r] /= divisor


@njit(**_JIT)
def _predict_rows_nan(X, rows, feature, threshold, child, nan_right, value, roots, base, divisor):
    """Rows ``rows`` of ``X`` (which hold NaN), walked one by one with each split's
    missing-value direction -> float64 (len(rows),)."""
    out = np.empty(rows.size, np.float64)
    for i in range(rows.size):
        r = rows[i]
        acc = base
        for t in range(roots.size):
            node = roots[t]
            while child[node] != node:
                x = X[r, feature[node]]
                if np.isnan(x):
                    node = child[node] + nan_right[node]
                else:
                    node = child[node] + (x > threshold[node])
            acc += value[node]
        out[i] = acc / divisor if divisor != 1.0 else acc
    return out


#: Largest node index and feature index a node word holds.
_MAX_CHILD = 2**24 - 1
_MAX_FEATURE = 255
#: Threshold rank of a leaf: no quantised value exceeds it, so a leaf keeps its row.
_LEAF_RANK = 2**31 - 1


@dataclass
class FlatEnsemble:
    """Members sharing one quantisation of the features.

    ``cuts``: per feature, the sorted distinct float32 thresholds of all members;
    ``members``: the :class:`FlatForest` of each; ``words``: per member, its node words
    (uint64: rank of the node's threshold among its feature's cuts << 32 | child << 8 |
    feature). A float32 ``x`` quantises to the number of cuts below it, so
    ``x > t`` exactly when ``rank(x) > rank(t)``: the walk compares integers and is
    exact."""

    cuts: list[np.ndarray]
    members: list[FlatForest]
    words: list[np.ndarray]

    @classmethod
    def build(cls, members: list[FlatForest]) -> FlatEnsemble:
        """Quantise ``members`` (the same features) together."""
        if not members:
            raise UnsupportedModel("no members")
        nf = members[0].n_features
        if any(m.n_features != nf for m in members):
            raise UnsupportedModel("members with different numbers of features")
        if nf - 1 > _MAX_FEATURE:
            raise UnsupportedModel(f"{nf} features (the kernel holds {_MAX_FEATURE + 1})")
        split = [m.child != np.arange(m.n_nodes) for m in members]
        cuts = [
            np.unique(
                np.concatenate(
                    [m.threshold[s & (m.feature == j)] for m, s in zip(members, split, strict=True)]
                )
            ).astype(np.float32)
            for j in range(nf)
        ]
        return cls(cuts, members, [_words(m, s, cuts) for m, s in zip(members, split, strict=True)])

    def quantise(self, X: np.ndarray) -> np.ndarray:
        """float32 rows (n, n_features) -> uint32 ranks (n, n_features), C-order."""
        Xq = np.empty(X.shape, np.uint32)
        for j, c in enumerate(self.cuts):
            Xq[:, j] = np.searchsorted(c, X[:, j], side="left")
        return Xq

    def predict(self, i: int, X: np.ndarray, Xq: np.ndarray | None = None) -> np.ndarray:
        """Predictions of member ``i``: ``X`` (n_rows, n_features) float32 C-order ->
        float64 (n_rows,), equal to the reference member's ``predict`` on the same float32
        rows (widened to float64). ``Xq``: ``quantise(X)`` when already at hand (it is
        shared by all members)."""
        f = self.members[i]
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != f.n_features:
            raise FluxscapeError(f"X has shape {X.shape}; the member needs {f.n_features} features")
        if Xq is None:
            Xq = self.quantise(X)
        out = np.empty(len(X), np.float64)
        _predict_quantised(
            Xq.reshape(-1),
            np.uint64(f.n_features),
            len(X),
            self.words[i],
            f.value,
            f.roots,
            f.depths,
            f.base,
            f.divisor,
            out,
        )
        nan_rows = np.flatnonzero(np.isnan(X).any(axis=1))
        if nan_rows.size:
            out[nan_rows] = _predict_rows_nan(
                X,
                nan_rows,
                f.feature,
                f.threshold,
                f.child,
                f.nan_right,
                f.value,
                f.roots,
                f.base,
                f.divisor,
            )
        return out

    def save(self, path) -> None:
        """Write the members (not the derived cuts and words) to one ``.npz`` file."""
        arrays = {}
        for i, m in enumerate(self.members):
            arrays |= {f"m{i}_{k}": v for k, v in m.arrays().items()}
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path) -> FlatEnsemble:
        """Read what :meth:`save` wrote (members in their saved order)."""
        with np.load(path, allow_pickle=False) as z:
            n = len({k.split("_", 1)[0] for k in z.files})
            members = [
                FlatForest.from_arrays(
                    {k.split("_", 1)[1]: z[k] for k in z.files if k.startswith(f"m{i}_")}
                )
                for i in range(n)
            ]
        return cls.build(members)


def _words(m: FlatForest, split: np.ndarray, cuts: list[np.ndarray]) -> np.ndarray:
    """Node words of one member (see :class:`FlatEnsemble`)."""
    if m.n_nodes - 1 > _MAX_CHILD:
        raise UnsupportedModel(
            f"a member of {m.n_nodes:,} nodes (the kernel holds {_MAX_CHILD + 1:,})"
        )
    rank = np.full(m.n_nodes, _LEAF_RANK, np.int64)
    for j, c in enumerate(cuts):
        sel = split & (m.feature == j)
        rank[sel] = np.searchsorted(c, m.threshold[sel], side="left")
    words = (rank << 32) | (m.child.astype(np.int64) << 8) | m.feature.astype(np.int64)
    return words.view(np.uint64)


def predict_member(forest: FlatForest, X: np.ndarray) -> np.ndarray:
    """Predictions of one flattened member on its own (``X`` float32 (n_rows, n_features)
    -> float64 (n_rows,)); see :meth:`FlatEnsemble.predict`."""
    return FlatEnsemble.build([forest]).predict(0, X)
