"""Subcommands that read media: predict, preprocess, catalog merge."""

from __future__ import annotations

import argparse
import json
import sys

from deepshield.cli.values import SUMMARIES, config_of, fraction_01, non_negative_int, parse_eps, positive_int
from deepshield.config import MergeConfig, PredictConfig, PreprocessConfig, VideoAttackConfig


def _predict(args: argparse.Namespace) -> int:
    from deepshield.predict import Predictor, collect_inputs, exit_code, problem_lines, to_json
    from deepshield.progress import progress

    cfg: PredictConfig = config_of(PredictConfig, args)
    files = collect_inputs(cfg.inputs)
    predictor = Predictor(cfg)
    for warning in predictor.warnings:
        print(f"deepshield predict: warning: {warning}", file=sys.stderr)
    todo = _resumed(cfg, files)
    stream = _stream(predictor, cfg, todo)
    results = list(progress(stream, desc="predict", total=len(todo), unit="video", enabled=len(todo) > 1))
    if cfg.as_json:
        threshold = (predictor.threshold, predictor.threshold_source)
        print(json.dumps(to_json(results, cfg, predictor.settings, threshold), indent=1))
    elif cfg.check_attack:
        print("\n".join(r.alarm.line(r.path) for r in results if r.alarm is not None))
    if cfg.explain is not None:
        from deepshield.explain import write_explanations

        print(f"Grad-CAM heatmaps: {write_explanations(cfg.explain, results)}", file=sys.stderr)
    for line in problem_lines(results, predictor.settings):
        print(f"deepshield predict: {line}", file=sys.stderr)
    return exit_code(results)


def _resumed(cfg: PredictConfig, files: list) -> list:
    """The inputs still to score: with ``--out``, those not already in the results file."""
    if cfg.out is None:
        return files
    from pathlib import Path

    from deepshield.stream import done_paths, repair

    out = Path(cfg.out)
    repair(out)
    done = done_paths(out)
    if done:
        print(f"deepshield predict: {cfg.out} already holds {len(done)} result(s); scoring the "
              f"{sum(str(f) not in done for f in files)} other input(s)", file=sys.stderr)
    return [f for f in files if str(f) not in done]


def _stream(predictor, cfg: PredictConfig, files: list):
    """Results as they finish: each appended to ``--out`` and, in text mode, printed as a table row."""
    from pathlib import Path

    from deepshield.predict import format_header, format_row, threshold_line
    from deepshield.stream import append_line, auto_workers, stream_results

    workers = auto_workers(len(files)) if cfg.workers is None else cfg.workers
    width = max([len(str(f)) for f in files] + [4])
    if not cfg.as_json and files:
        print(format_header(width), flush=True)
    for r in stream_results(predictor, files, workers, explain=cfg.explain is not None):
        if cfg.out is not None:
            append_line(Path(cfg.out), r.to_dict(frames=True))
        if not cfg.as_json:
            print(format_row(r, width), flush=True)
        yield r
    if not cfg.as_json:
        print(threshold_line(predictor.threshold, predictor.threshold_source), flush=True)


def add_predict(sub: argparse._SubParsersAction) -> None:
    from deepshield.contracts.aggregate import AGGREGATIONS
    from deepshield.data.faces import DETECTORS

    p = sub.add_parser("predict", help=SUMMARIES["predict"],
                       description="Detect and crop faces as preprocessing did for training, score them, and "
                                   "print each video's fake probability (per frame with --json). Exit code 3 "
                                   "when an input has no face, 2 when one cannot be read, 4 when "
                                   "--check-attack flags one (ABSTAIN).")
    p.add_argument("inputs", nargs="+", help="videos, images, or folders of them")
    p.add_argument("--checkpoint", default="default",
                   help="best.pt or last.pt of a training run, or a detector bundled with deepshield: "
                        "'default' or 'robust' (adversarially trained; see their model cards) "
                        "(default: default)")
    p.add_argument("--json", dest="as_json", action="store_true", help="print JSON with per-frame scores")
    p.add_argument("--frames", type=positive_int, default=None,
                   help="frames sampled evenly per video (default: as preprocessed for training, else 32)")
    p.add_argument("--detector", default=None, choices=list(DETECTORS),
                   help="face detector (default: the checkpoint's, else mtcnn)")
    p.add_argument("--margin", type=float, default=None,
                   help="crop margin (default: the checkpoint's, else 1.3)")
    p.add_argument("--shift", type=float, default=None,
                   help="crop centre shift down, in face box sides (default: the checkpoint's, else 0)")
    p.add_argument("--size", type=positive_int, default=None,
                   help="crop size in px (default: the checkpoint's, else its image size)")
    p.add_argument("--min-score", type=fraction_01, default=None,
                   help="face detector confidence in [0, 1] (default: the checkpoint's, else 0.9)")
    p.add_argument("--threshold", type=fraction_01, default=None,
                   help="call FAKE at p(fake) >= this (default: the model's calibrated threshold, recorded "
                        "in its checkpoint by train or 'deepshield calibrate'; 0.5 for a model without one)")
    p.add_argument("--aggregate", default="mean", choices=list(AGGREGATIONS),
                   help="frame scores -> video score (default: mean)")
    p.add_argument("--defense", default=None,
                   help="input defenses applied to each face before the model, e.g. jpeg:75,median:3")
    p.add_argument("--explain", default=None, metavar="DIR",
                   help="write each face crop beside its Grad-CAM heatmap (evidence for 'fake') as PNGs "
                        "into DIR, with DIR/index.json (needs the torch model)")
    p.add_argument("--check-attack", action="store_true",
                   help="attack alarm: flag inputs whose score is unstable under JPEG-75 and median-3 "
                        "probes (adversarial perturbations are brittle); flagged inputs are labelled "
                        "ABSTAIN and the exit code is 4 (threshold calibrated for --checkpoint default)")
    _add_queue_flags(p)
    p.set_defaults(func=_predict)


def _add_queue_flags(p: argparse.ArgumentParser) -> None:
    """predict's flags for speed: runtimes, tracking, the JSON-lines queue, workers, batch, device."""
    from deepshield.export import EXPORT_FORMATS

    p.add_argument("--runtime", default="auto", choices=["auto", "torch", *EXPORT_FORMATS],
                   help="what scores the crops: auto (ONNX Runtime for a bundled model, whose export ships "
                        "with it, parity-checked; torch when --explain, --defense or --device cuda needs "
                        "it), torch (the checkpoint in PyTorch), onnx (ONNX Runtime, CPU) or torchscript; "
                        "with onnx/torchscript --checkpoint is an exported file or a checkpoint, exported "
                        "once into ~/.cache/deepshield/export (default: auto)")
    p.add_argument("--detector-runtime", default="auto", choices=["auto", "torch", "onnx"],
                   help="what runs the face detector: auto (MTCNN's nets as ONNX, shipped with deepshield, "
                        "when installed: no torch at start-up, same boxes), torch (facenet-pytorch) or onnx "
                        "(default: auto)")
    p.add_argument("--detect-every", type=positive_int, default=1,
                   help="run the face detector on every N-th sampled frame and carry its boxes to the frames "
                        "between (re-detecting where a face comes, goes or the scene cuts) (default: 1)")
    p.add_argument("--out", default=None, metavar="RESULTS.jsonl",
                   help="append one JSON line per input as it finishes; a rerun skips the inputs already "
                        "there (a killed run resumes)")
    p.add_argument("--workers", type=non_negative_int, default=None,
                   help="processes that decode and find faces while the model scores (default: up to the "
                        "cores for a folder, none for one file; 0: all in this process)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--device", default="auto")


def _preprocess(args: argparse.Namespace) -> int:
    from deepshield.data.preprocess import run_preprocess

    cfg: PreprocessConfig = config_of(PreprocessConfig, args)
    print(run_preprocess(cfg, progress=cfg.progress))
    return 0


def add_preprocess(sub: argparse._SubParsersAction) -> None:
    from deepshield.data.faces import DETECTORS, FACE_SELECTORS
    from deepshield.data.layouts import LAYOUTS

    p = sub.add_parser("preprocess", help=SUMMARIES["preprocess"])
    p.add_argument("root", help="dataset folder")
    p.add_argument("--layout", required=True, choices=list(LAYOUTS),
                   help="faces: pre-cropped face images (real/ and fake/, or a --metadata CSV)")
    p.add_argument("--out", required=True, help="output folder (not inside ROOT/real or ROOT/fake)")
    p.add_argument("--fps", type=float, default=None, help="frames per second to sample")
    p.add_argument("--frames-per-video", type=positive_int, default=None,
                   help="N evenly spaced frames per video (default: 32 when --fps is not given)")
    p.add_argument("--size", type=positive_int, default=224, help="crop size in pixels (default: 224)")
    p.add_argument("--margin", type=float, default=1.3,
                   help="crop side = margin x face box side; < 1 zooms into the face (default: 1.3)")
    p.add_argument("--shift", type=float, default=0.0,
                   help="move the crop centre down by this fraction of the face box (default: 0)")
    p.add_argument("--metadata", default=None,
                   help="faces: CSV with file,label[,video,original] (default: ROOT/metadata.csv if present)")
    p.add_argument("--split-ratios", default=None,
                   help="train,val,test fractions for videos without an official split, assigned by group "
                        "(a real video and its fakes together) (default: 0.8,0.1,0.1)")
    p.add_argument("--faces", default="largest", choices=list(FACE_SELECTORS))
    p.add_argument("--detector", default="mtcnn", choices=list(DETECTORS),
                   help="face detector (default: mtcnn)")
    p.add_argument("--workers", type=positive_int, default=1, help="parallel worker processes (default: 1)")
    p.add_argument("--min-score", type=fraction_01, default=0.9,
                   help="minimum detector confidence (default: 0.9)")
    p.add_argument("--format", default="png", choices=["png", "jpg"])
    p.add_argument("--quality", type=positive_int, default=95, help="JPEG quality (default: 95)")
    p.add_argument("--compression", default=None, help="ffpp: keep only raw|c23|c40 (default: all)")
    p.add_argument("--splits", default=None, help="ffpp: folder with the official train/val/test.json")
    p.add_argument("--shard", default=None, help="K/N: process the K-th of N deterministic shards")
    p.add_argument("--max-side", type=positive_int, default=640, help="detect on frames downscaled to this")
    p.add_argument("--min-face-size", type=positive_int, default=40,
                   help="smallest face searched for, in full-frame px (default: 40; MTCNN's own is 20)")
    p.add_argument("--keyframes", action="store_true",
                   help="sample the nearest keyframes instead of the exact instants: much faster decoding, "
                        "frames moved by up to half a keyframe interval (FF++ c23: up to 5 s)")
    p.add_argument("--seed", type=int, default=0, help="seeds torch in each worker (default: 0)")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=_preprocess)


def _catalog(args: argparse.Namespace) -> int:
    from deepshield.data.catalog import merge_catalogs

    cfg: MergeConfig = config_of(MergeConfig, args)
    rows, errors = merge_catalogs(cfg.out, list(cfg.parts))
    print(f"merged {len(cfg.parts)} catalogs into {cfg.out}: {rows} rows, {errors} errors")
    return 0


def add_catalog(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("catalog", help=SUMMARIES["catalog"])
    p.add_argument("action", choices=["merge"])
    p.add_argument("out", help="merged output folder")
    p.add_argument("parts", nargs="+", help="preprocess output folders of the shards")
    p.set_defaults(func=_catalog)


# Subcommand -> (parser builder, the config its flags fill).


def _attack(args: argparse.Namespace) -> int:
    import json

    from deepshield.video_attack import attack_video, format_result

    cfg: VideoAttackConfig = config_of(VideoAttackConfig, args)
    result = attack_video(cfg)
    print(json.dumps(result.to_json(), indent=1) if cfg.as_json else format_result(result))
    return 0


def add_attack(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attack", help=SUMMARIES["attack"],
                       description="Perturb the face region of the frames the detector samples (in "
                                   "frame pixels, through its crop and resize, against the video-level "
                                   "score, with expectation over re-encoding, rescales and shifts), write an "
                                   "H.264 mp4, and report what 'deepshield predict' says about the decoded "
                                   "file. Exit code 3 when the input has no face, 2 when it cannot be read.")
    p.add_argument("video", help="the video to attack")
    p.add_argument("--out", required=True, help="the adversarial mp4 to write (never the input)")
    p.add_argument("--checkpoint", default="default",
                   help="the detector to fool (its crop settings define the pipeline) (default: default)")
    p.add_argument("--surrogate", default=None,
                   help="craft on this checkpoint instead and judge with --checkpoint (a transfer "
                        "attack)")
    p.add_argument("--eps", type=parse_eps, default=4 / 255,
                   help="L-inf budget in frame pixels (default: 4/255)")
    p.add_argument("--alpha", type=parse_eps, default=None, help="step size (default: eps/4)")
    p.add_argument("--steps", type=positive_int, default=50, help="(default: 50)")
    p.add_argument("--eot", type=positive_int, default=4,
                   help="random re-encodings/rescales/shifts averaged per step (default: 4)")
    p.add_argument("--target", default="auto", choices=["auto", "real", "fake"],
                   help="verdict to reach; auto: the opposite of the detector's verdict (default: auto)")
    p.add_argument("--attack-frames", default="all", choices=["all", "sampled"],
                   help="all: carry each sampled frame's perturbation to the frames around it "
                        "(default: all)")
    p.add_argument("--crf", type=non_negative_int, default=23,
                   help="x264 CRF of the written mp4 (default: 23)")
    p.add_argument("--frames", type=positive_int, default=None,
                   help="frames the detector samples (default: as for predict)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", dest="as_json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=_attack)
