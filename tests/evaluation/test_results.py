"""results.json <-> EvalResult: typed rows of every kind, the same file written and read back."""

import json

import torch
from torch.utils.data import Subset

from deepshield.config import SweepSpec
from deepshield.contracts.rows import Check, CorruptionRow, Gallery, Metrics, SweepRow
from deepshield.evaluation.formatting import json_ready
from deepshield.evaluation.results import DatasetEval, EvalResult
from deepshield.evaluation.robust import sweep
from deepshield.evaluation.threat_rows import build_channels, corruption_rows, transfer_rows
from deepshield.models import build_model

CPU = torch.device("cpu")


def test_every_kind_of_row_is_typed_and_round_trips(trained_cnn, video_frames):
    data = Subset(video_frames, range(20, 44))  # 3 real and 3 fake videos
    data.video_methods = video_frames.video_methods
    spec = SweepSpec(attacks=("fgsm", "pgd"), eps=(4 / 255,), steps=2, gallery=2, sanity_n=8)
    swept, images = sweep(trained_cnn, data, spec, CPU, channels=build_channels(("jpeg:75",)))
    torch.manual_seed(1)
    swept.transfer = transfer_rows(trained_cnn, build_model("small_cnn").eval(), data, spec, CPU, "s.pt")
    swept.corruptions = corruption_rows(trained_cnn, data, CPU, names=["jpeg30"])
    result = EvalResult(sweep=swept, checks=[Check("huge_eps", "pgd at huge eps", True, "ok", value=0.0)],
                        run="r", dataset="synthetic", cross=[DatasetEval("other", "cross-domain", swept)])

    assert isinstance(swept.clean, Metrics)
    assert set(swept.clean.by_method) == {"real", "Deepfakes", "FaceSwap"}
    assert all(isinstance(r, SweepRow) for r in [*swept.robust, *swept.worst_case, *swept.reencoded])
    pgd = swept.robust[1]
    assert (pgd.attack, pgd.key, pgd.attacked > 0, pgd.seconds >= 0) == ("pgd", "pgd@4/255", True, True)
    assert swept.worst_case[0].attacks == ("fgsm", "pgd") and swept.worst_case[0].seconds is None
    channels = {(r.attack, r.channel) for r in swept.reencoded}
    assert channels == {(a, "jpeg:75") for a in ("clean", "fgsm", "pgd")}
    assert all((r.success is None) == (r.attack == "clean") for r in swept.reencoded)
    assert [r.transfer_from for r in swept.transfer] == ["s.pt", "s.pt"]
    assert isinstance(swept.corruptions[0], CorruptionRow) and swept.corruptions[0].name == "jpeg30"
    assert isinstance(swept.gallery, Gallery) and [it.label for it in swept.gallery.items] == [0, 1]
    assert images.clean.shape[0] == len(swept.gallery.items)

    written = json_ready(result.to_json())
    text = json.dumps(written, indent=1)
    again = EvalResult.from_json(json.loads(text))
    assert json.dumps(json_ready(again.to_json()), indent=1) == text  # byte for byte, key order included
    assert again.sweep.robust[1].metrics.by_method["FaceSwap"].video["mean"].n > 0
    assert again.checks == result.checks and again.cross[0].sweep.transfer[0].transfer_from == "s.pt"
