"""Rasa without TensorFlow, in a process whose pipeline has no TensorFlow component.

Rasa 3.6 imports TensorFlow whatever the pipeline: ``rasa.utils.train_utils``, which
every entity extractor imports, takes Keras callbacks and a data generator from
``rasa.utils.tensorflow``, and the training recipe imports every default component, DIET
and TED among them. That costs the Rasa server and the trainer about 360 MB resident
each, and seconds of imports (``python -m bench.memory``); opsbot's pipeline
(config.yml) uses none of it.

:func:`install` puts stand-ins for the eight modules that bring TensorFlow in into
``sys.modules`` before Rasa is imported. A stand-in holds classes named as the real ones
(the recipe's validator compares the configured components with them); using one fails
with :class:`TensorFlowSkipped`, which says why. The Rasa server, the trainer and
``opsbot train`` install them only when every component of their model or configuration
is known to need no TensorFlow: Rasa's own components other than :data:`COMPONENTS`, and
opsbot's ``nlu.`` components.
"""

from __future__ import annotations

import json
import sys
import tarfile
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import yaml

__all__ = ["COMPONENTS", "TensorFlowSkipped", "config_needs_tensorflow", "install", "install_for",
           "installed", "model_needs_tensorflow"]

# The modules that import TensorFlow, with the names the rest of Rasa imports from them.
STAND_INS: dict[str, tuple[str, ...]] = {
    "rasa.utils.tensorflow.callback": ("RasaTrainingLogger", "RasaModelCheckpoint"),
    "rasa.utils.tensorflow.data_generator": ("RasaBatchDataGenerator",),
    "rasa.nlu.classifiers.diet_classifier": ("DIETClassifier",),
    "rasa.nlu.selectors.response_selector": ("ResponseSelector",),
    "rasa.nlu.featurizers.dense_featurizer.convert_featurizer": ("ConveRTFeaturizer",),
    "rasa.nlu.featurizers.dense_featurizer.lm_featurizer": ("LanguageModelFeaturizer",),
    "rasa.core.policies.ted_policy": ("TEDPolicy",),
    "rasa.core.policies.unexpected_intent_policy": ("UnexpecTEDIntentPolicy",),
}
COMPONENTS = frozenset(name for module, names in STAND_INS.items()
                       if not module.startswith("rasa.utils.") for name in names)
"""The configurable components that need TensorFlow."""

_MARK = "__opsbot_stand_in__"


class TensorFlowSkipped(RuntimeError):
    """A TensorFlow component was used in a process that started without TensorFlow."""


def _refuse(name: str) -> NoReturn:
    raise TensorFlowSkipped(
        f"{name} needs TensorFlow, and this process started without it: its pipeline had "
        "no TensorFlow component. Restart opsbot (or run the command again) so that it "
        "loads TensorFlow for the new configuration.")


class _StandInType(type):
    def __getattr__(cls, attribute: str) -> Any:
        if attribute.startswith("__"):  # typing and copy probe these with getattr(..., None)
            raise AttributeError(attribute)
        _refuse(cls.__name__)

    def __call__(cls, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(cls.__name__)


def _stand_in(module: str, names: Iterable[str]) -> types.ModuleType:
    stand_in = types.ModuleType(module, f"opsbot's stand-in for {module}, without TensorFlow")
    setattr(stand_in, _MARK, True)
    for name in names:
        setattr(stand_in, name, _StandInType(name, (), {"__module__": module}))
    return stand_in


def installed() -> bool:
    """Whether this process runs Rasa without TensorFlow."""
    return any(getattr(sys.modules.get(m), _MARK, False) for m in STAND_INS)


def install() -> bool:
    """Put the stand-ins in place; False (and nothing done) once Rasa's real modules or
    TensorFlow are imported."""
    if installed():
        return True
    if "tensorflow" in sys.modules or any(m in sys.modules for m in STAND_INS):
        return False
    for module, names in STAND_INS.items():
        sys.modules[module] = _stand_in(module, names)
    return True


def install_for(config: Path) -> bool:
    """:func:`install`, unless the configuration may need TensorFlow; whether this process
    now runs Rasa without it."""
    return installed() or (not config_needs_tensorflow(config) and install())


def _known_without(path: str) -> bool:
    """Whether a component's class path is one that needs no TensorFlow."""
    module = path.rpartition(".")[0]
    return (path.startswith("nlu.") or
            (path.startswith("rasa.") and module not in STAND_INS))


def config_needs_tensorflow(config: Mapping[str, Any] | Path) -> bool:
    """Whether a configuration (config.yml, or its parsed content) may need TensorFlow: it
    names a component of :data:`COMPONENTS` or one outside Rasa and opsbot's ``nlu.``, or
    leaves the pipeline or the policies to Rasa's defaults (DIET, TED)."""
    if isinstance(config, Path):
        try:
            config = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            return True
    if not isinstance(config, Mapping):
        return True
    for section in ("pipeline", "policies"):
        items = config.get(section)
        if not isinstance(items, list) or not items:
            return True
        for item in items:
            name = str(item.get("name", "")) if isinstance(item, Mapping) else ""
            if not name or name in COMPONENTS or ("." in name and not _known_without(name)):
                return True
    return False


def model_needs_tensorflow(model: Path) -> bool:
    """Whether a trained model (a .tar.gz, or the newest in a directory) may need
    TensorFlow to load: a class of its graph that is not known to need none."""
    if model.is_dir():
        models = sorted(model.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
        if not models:
            return True
        model = models[-1]
    try:
        with tarfile.open(model, "r:gz") as archive:
            member = archive.extractfile("metadata.json")
            if member is None:
                return True
            metadata = json.load(member)
        nodes = metadata["predict_schema"]["nodes"].values()
        return not all(_known_without(str(node["uses"])) for node in nodes)
    except (OSError, KeyError, TypeError, ValueError, AttributeError, tarfile.TarError):
        return True
