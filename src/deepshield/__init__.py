"""deepshield: deepfake detectors that hold up under adversarial attack.

Import what you use from its package (``from deepshield.models import build_model``); this module holds
only the version, so importing any part of deepshield does not load the rest.
"""

__version__ = "0.1.0"
