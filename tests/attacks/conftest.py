import pytest

from deepshield.data.synthetic import SyntheticDeepfakeDataset


@pytest.fixture(scope="module")
def batch():
    """16 synthetic 32 px images and labels shared by the attack tests."""
    ds = SyntheticDeepfakeDataset(16, image_size=32, seed=7)
    return ds.images, ds.labels
