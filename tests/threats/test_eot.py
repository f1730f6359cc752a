"""EOT and the randomness check: EOT-PGD beats plain PGD on a randomized defense."""

import pytest
import torch

from deepshield.attacks import PGD
from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.errors import ConfigError
from deepshield.evaluation.robust import attack_correct
from deepshield.models import build_model
from deepshield.threats import DefendedModel, EOTAttack, EOTModel, is_randomized, parse_defenses


@pytest.fixture(scope="module")
def batch():
    ds = SyntheticDeepfakeDataset(8, image_size=32, seed=4)
    return ds.images, ds.labels


def test_randomness_check(trained_cnn, batch):
    x, _ = batch
    assert not is_randomized(trained_cnn, x)
    assert is_randomized(DefendedModel(trained_cnn, "noise:0.01"), x)
    assert is_randomized(DefendedModel(trained_cnn, "resize_pad:0.9"), x)
    assert not is_randomized(DefendedModel(trained_cnn, "jpeg:75,median:3,bits:5"), x)
    with pytest.raises(ConfigError, match="tries >= 2"):
        is_randomized(trained_cnn, x, tries=1)


def test_randomness_check_leaves_no_trace(batch):
    x, _ = batch
    model = build_model("small_cnn").train()
    model.features[1].eval()
    modes = [m.training for m in model.modules()]
    seeded = DefendedModel(model, parse_defenses("noise:0.05", seed=3))
    state = torch.get_rng_state()
    assert is_randomized(seeded, x) and is_randomized(DefendedModel(model, "noise:0.05"), x)
    assert torch.equal(torch.get_rng_state(), state)
    assert [m.training for m in model.modules()] == modes
    with torch.no_grad():  # the defense's own generator is where it was: same draws as a fresh one
        fresh = DefendedModel(model, parse_defenses("noise:0.05", seed=3))
        torch.testing.assert_close(seeded.eval()(x), fresh.eval()(x))


def test_eot_model(trained_cnn, batch):
    x, _ = batch
    with torch.no_grad():
        torch.testing.assert_close(EOTModel(trained_cnn, n=4)(x), trained_cnn(x).log_softmax(1))
        noisy = DefendedModel(trained_cnn, parse_defenses("noise:0.05", seed=0))
        eot = EOTModel(noisy, n=3)(x)
        again = DefendedModel(trained_cnn, parse_defenses("noise:0.05", seed=0))
        want = sum(again(x).log_softmax(1) for _ in range(3)) / 3
    torch.testing.assert_close(eot, want)
    with pytest.raises(ConfigError):
        EOTModel(trained_cnn, n=0)


def test_eot_attack_only_when_random(trained_cnn, batch):
    x, y = batch
    pgd = PGD(eps=4 / 255, steps=3, seed=0)
    attack = EOTAttack(pgd, n=2)
    assert attack.eps == pgd.eps and attack.steps == 3
    torch.testing.assert_close(attack(trained_cnn, x, y), pgd(trained_cnn, x, y))
    assert attack.randomized is False
    attack(DefendedModel(trained_cnn, "noise:0.02"), x, y)
    assert attack.randomized is True


def test_eot_pgd_beats_plain_pgd_on_random_noise(trained_cnn):
    ds = SyntheticDeepfakeDataset(128, image_size=32, seed=11)
    x, y = ds.images, ds.labels
    pgd = PGD(eps=4 / 255, alpha=1 / 255, steps=10, early_stop=True, seed=0)
    acc = {}
    for name, attack in (("plain", pgd), ("eot", EOTAttack(pgd, n=8))):
        defended = DefendedModel(trained_cnn, parse_defenses("noise:0.03", seed=0))
        _, p = attack_correct(defended, x, y, attack)
        acc[name] = ((p >= 0.5).long() == y).float().mean().item()
    assert attack.randomized
    assert acc["eot"] <= acc["plain"] - 0.05, acc
