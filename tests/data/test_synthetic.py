import pytest
import torch

from deepshield.data.synthetic import SyntheticDeepfakeDataset
from deepshield.errors import ConfigError


def test_deterministic_range_and_labels():
    a = SyntheticDeepfakeDataset(16, image_size=32, seed=3)
    b = SyntheticDeepfakeDataset(16, image_size=32, seed=3)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, SyntheticDeepfakeDataset(16, image_size=32, seed=4).images)
    x, y = a[1]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= a.images.min() and a.images.max() <= 1.0
    assert a.labels.tolist() == [i % 2 for i in range(16)]
    assert int(y) == 1


def test_fake_cue_is_high_frequency_not_colour():
    ds = SyntheticDeepfakeDataset(200, image_size=64, seed=0)
    real, fake = ds.images[ds.labels == 0], ds.images[ds.labels == 1]
    # Mean colour barely differs between classes: the cue is not a colour shift.
    assert (real.mean((0, 2, 3)) - fake.mean((0, 2, 3))).abs().max() < 0.05
    # Checkerboard energy (Nyquist frequency of the spectrum) is much larger in fakes.
    checker = torch.tensor([[(-1.0) ** (i + j) for j in range(64)] for i in range(64)])

    def nyquist(imgs):
        return (imgs * checker).mean((2, 3)).abs().mean()

    assert nyquist(fake) > 5 * nyquist(real)


@pytest.mark.parametrize("kw", [{"n": 0}, {"n": 4, "image_size": 15}])
def test_bad_arguments(kw):
    with pytest.raises(ConfigError):  # a ValueError too
        SyntheticDeepfakeDataset(**kw)
