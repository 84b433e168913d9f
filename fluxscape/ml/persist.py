"""Saving and loading trained models with skops (no pickle), each with a model card.

File layout: ``PATH`` (``.skops``) holds a dict ``{"card": <card JSON text>, "model":
<the model serialised by skops, bytes>}``; ``PATH.card.json`` beside it is a readable copy of
the card. The card records targets, features, sites, period, CV skill (given by the caller),
library versions, ``model_sha256`` (the sha256 of the serialised model bytes) and ``card_id``,
a content hash of everything else in the card; product stores list card ids in their
``models`` attribute (DESIGN.md).

Loading checks the provenance before trusting the model: the card must match its
``card_id``, the model bytes must match the card's ``model_sha256`` (a model swapped into a
file keeping the old card is refused) and the model must be of the expected type
(:class:`fluxscape.ml.models.FluxModel`). Files of older fluxscape versions, which held the
model object itself, carry no checkable hash and are refused. Loading never unpickles: skops
reconstructs only types it trusts by default (numpy, builtins, most of scikit-learn) plus those
in :data:`ALLOWED_TYPES`; any other type is refused with a FluxscapeError naming the file and
the types.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fluxscape.errors import FluxscapeError


def _sio():
    """skops.io, imported on first use: importing it builds skops' trusted-type table from
    all of scikit-learn (about 1.5 s), which a command that only validates a workflow never
    needs."""
    import skops.io

    return skops.io


__all__ = ["ALLOWED_TYPES", "card_path", "load_model", "read_card", "save_model"]

#: Types beyond skops' defaults that our estimators contain (found by dumping a FluxModel of
#: rf + hgb + lgbm members and listing ``skops.io.get_untrusted_types``).
ALLOWED_TYPES: frozenset[str] = frozenset(
    {
        "fluxscape.ml.models.EnsembleRegressor",
        "fluxscape.ml.models.FluxModel",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "lightgbm.sklearn.LGBMRegressor",
        "lightgbm.basic.Booster",
        "collections.OrderedDict",
    }
)
REQUIRED_CARD_KEYS = ("targets", "features", "sites", "period", "cv_skill")
_LIBRARIES = ("fluxscape", "numpy", "pandas", "scikit-learn", "lightgbm", "skops")


def card_path(path: str | Path) -> Path:
    """The readable card beside a model file: ``<path>.card.json``."""
    path = Path(path)
    return path.with_name(path.name + ".card.json")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in _LIBRARIES:
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            out[lib] = "not installed"
    return out


def _card_id(card: dict) -> str:
    body = {k: v for k, v in card.items() if k != "card_id"}
    text = json.dumps(body, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_model(model, path: str | Path, card: dict) -> dict:
    """Save ``model`` to ``path`` (skops) with its model card; returns the completed card.

    ``card`` must hold ``targets``, ``features``, ``sites``, ``period`` and ``cv_skill`` (any
    JSON-serialisable values; extra keys are kept). Added: ``model_type``, ``library_versions``,
    ``created``, ``model_sha256`` and ``card_id``. Raises FluxscapeError when a key is missing.
    """
    missing = [k for k in REQUIRED_CARD_KEYS if k not in card]
    if missing:
        raise FluxscapeError(f"model card for {path}: missing key(s) {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = _sio().dumps(model)
    full = {
        **card,
        "model_type": f"{type(model).__module__}.{type(model).__qualname__}",
        "library_versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_sha256": hashlib.sha256(blob).hexdigest(),
    }
    full = json.loads(json.dumps(full, default=str))
    full["card_id"] = _card_id(full)
    text = json.dumps(full, indent=2, sort_keys=True)
    _sio().dump({"card": text, "model": blob}, path)
    card_path(path).write_text(text + "\n")
    return full


def read_card(path: str | Path) -> dict:
    """The model card of a saved model (from ``<path>.card.json``, without loading the model)."""
    cp = card_path(path)
    try:
        return json.loads(cp.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FluxscapeError(f"{cp}: cannot read model card ({exc})") from exc


def load_model(path: str | Path, expected: type | None = None):
    """Load a model saved by :func:`save_model`; returns ``(model, card)``.

    Raises FluxscapeError naming the file when it is missing or not a fluxscape model file,
    when its card does not match its ``card_id``, when the model does not match the card's
    ``model_sha256``, when it contains any type outside skops' defaults and
    :data:`ALLOWED_TYPES` (the types are listed) or when the model is not an ``expected``
    (default :class:`fluxscape.ml.models.FluxModel`; the type found is named).
    """
    if expected is None:
        from fluxscape.ml.models import FluxModel

        expected = FluxModel
    path = Path(path)
    card, blob = _read_container(path)
    if hashlib.sha256(blob).hexdigest() != card.get("model_sha256"):
        raise FluxscapeError(
            f"{path}: the model does not match its card's model_sha256 (a swapped or altered "
            "model); delete the file and its card to retrain"
        )
    model = _load_trusted(path, blob)
    if not isinstance(model, expected):
        raise FluxscapeError(
            f"{path}: holds a {_type_name(model)}, not a {_type_name(expected, is_type=True)}: "
            "not a fluxscape model"
        )
    return model, card


def _type_name(obj, is_type: bool = False) -> str:
    cls = obj if is_type else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _read_container(path: Path) -> tuple[dict, bytes]:
    """The card and the serialised model of a model file, the card checked against its
    ``card_id``; FluxscapeError naming the file otherwise."""
    if not path.is_file():
        raise FluxscapeError(f"{path}: no such model file")
    try:
        untrusted = _sio().get_untrusted_types(file=path)
    except Exception as exc:  # skops raises zipfile/json/KeyError on foreign files
        raise FluxscapeError(
            f"{path}: not a fluxscape model (not a skops file: {_one_line(exc)})"
        ) from exc
    _refuse_unknown(path, untrusted)
    if untrusted:  # the estimator's own types at the top level: an older fluxscape's layout
        raise FluxscapeError(
            f"{path}: a model file of an older fluxscape, without a checkable model hash; "
            "delete it and its card to retrain"
        )
    try:
        obj = _sio().load(path, trusted=[])
        card = json.loads(obj["card"]) if isinstance(obj, dict) else None
    except Exception as exc:
        raise FluxscapeError(f"{path}: cannot load model ({_one_line(exc)})") from exc
    if not (isinstance(card, dict) and set(obj) == {"card", "model"}):
        found = _type_name(obj) if not isinstance(obj, dict) else f"keys {sorted(obj)}"
        raise FluxscapeError(
            f"{path}: not a fluxscape model (expected a card and a model, found {found})"
        )
    if not isinstance(obj["model"], bytes):
        raise FluxscapeError(
            f"{path}: not a fluxscape model (its model is a {_type_name(obj['model'])}, not "
            "a serialised estimator)"
        )
    if card.get("card_id") != _card_id(card):
        raise FluxscapeError(f"{path}: model card does not match its card_id (altered file)")
    return card, obj["model"]


def _load_trusted(path: Path, blob: bytes):
    """The model of serialised ``blob``, refusing types outside the allowed ones."""
    try:
        untrusted = _sio().get_untrusted_types(data=blob)
    except Exception as exc:
        raise FluxscapeError(f"{path}: cannot load model ({_one_line(exc)})") from exc
    _refuse_unknown(path, untrusted)
    try:
        return _sio().loads(blob, trusted=list(untrusted))
    except Exception as exc:
        raise FluxscapeError(f"{path}: cannot load model ({_one_line(exc)})") from exc


def _refuse_unknown(path: Path, untrusted: list[str]) -> None:
    unknown = sorted(set(untrusted) - ALLOWED_TYPES)
    if unknown:
        raise FluxscapeError(
            f"{path}: refusing to load unknown type(s) {', '.join(unknown)} "
            "(only fluxscape estimators and their scikit-learn/LightGBM parts are allowed)"
        )


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
