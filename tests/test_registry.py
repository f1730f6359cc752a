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


def test_every_family_uses_it():
    from deepshield.attacks import ATTACKS
    from deepshield.models.registry import MODELS
    from deepshield.threats.corruptions import CORRUPTIONS
    from deepshield.threats.defenses import DEFENSES
    from deepshield.training.objectives import OBJECTIVES

    for family in (ATTACKS, MODELS, CORRUPTIONS, DEFENSES, OBJECTIVES):
        assert isinstance(family, Registry) and len(family) > 0
