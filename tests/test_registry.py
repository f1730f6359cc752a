"""The shared registry: decorators fill it, a taken name is a bug, an unknown name a user error."""

import pytest

from deepshield.errors import ConfigError
from deepshield.registry import Registry


def test_register_lookup_and_errors():
    things = Registry("thing")

    @things.register("a")
    def a():
        return 1

    assert things.lookup("a") is a and things.register("a")(a) is a  # the same entry twice: fine
    with pytest.raises(ValueError, match="thing name 'a' is already registered"):
        things.add("a", lambda: 2)
    with pytest.raises(ConfigError, match="unknown thing 'b'; choose from a"):
        things.lookup("b")
    hinted = Registry("dataset", hint="e.g. --dataset synthetic")
    hinted.add("synthetic", 1)
    expected = r"unknown dataset 'x'; choose from synthetic \(e.g. --dataset synthetic\)"
    with pytest.raises(ConfigError, match=expected):
        hinted.lookup("x")


def test_every_family_uses_it():
    from deepshield.attacks import ATTACKS
    from deepshield.data.datasets import DATASETS
    from deepshield.data.faces import DETECTORS, FACE_SELECTORS
    from deepshield.data.layouts import LAYOUTS
    from deepshield.data.transforms import AUGMENTS
    from deepshield.models import MODELS
    from deepshield.threats.corruptions import CORRUPTIONS
    from deepshield.threats.defenses import DEFENSES
    from deepshield.training.objectives import OBJECTIVES

    for family in (ATTACKS, MODELS, CORRUPTIONS, DEFENSES, OBJECTIVES, DATASETS, DETECTORS, FACE_SELECTORS,
                   LAYOUTS, AUGMENTS):
        assert isinstance(family, Registry) and len(family) > 0


def test_a_second_detector_under_a_taken_name_is_an_error():
    from deepshield.data.faces import build_detector, register_detector

    with pytest.raises(ValueError, match="face detector name 'mtcnn' is already registered"):
        register_detector("mtcnn")(type("Other", (), {}))
    with pytest.raises(ConfigError, match="unknown face detector 'retina'; choose from"):
        build_detector("retina")


@pytest.mark.parametrize(("lookup", "message"), [
    ("deepshield.data.faces:build_selector", "unknown --faces mode 'some'"),
    ("deepshield.data.transforms:build_augment", "unknown augmentation 'some'"),
    ("deepshield.data.layouts:scan_layout", "unknown layout 'some'"),
])
def test_every_family_gives_the_same_unknown_name_error(lookup, message, tmp_path):
    import importlib

    module, _, name = lookup.partition(":")
    fn = getattr(importlib.import_module(module), name)
    args = {"build_selector": ("some",), "build_augment": ("some", 32),
            "scan_layout": ("some", tmp_path)}[name]
    with pytest.raises(ConfigError, match=message + "; choose from"):
        fn(*args)
