"""deepshield: deepfake detectors that hold up under adversarial attack."""

__version__ = "0.1.0"

from deepshield.attacks import FGSM, PGD, build_attack  # noqa: E402
from deepshield.config import EvalConfig, TrainConfig  # noqa: E402
from deepshield.data.synthetic import SyntheticDeepfakeDataset  # noqa: E402
from deepshield.models import SmallCNN, build_model, count_parameters  # noqa: E402

__all__ = ["FGSM", "PGD", "EvalConfig", "SmallCNN", "SyntheticDeepfakeDataset", "TrainConfig", "__version__",
           "build_attack", "build_model", "count_parameters"]
