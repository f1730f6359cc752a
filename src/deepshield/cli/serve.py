"""``deepshield serve``: the web app (page + JSON API) on localhost."""

from __future__ import annotations

import argparse

from deepshield.cli.values import SUMMARIES, config_of, parse_list, positive_int
from deepshield.config import ServeConfig


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def _serve(args: argparse.Namespace) -> int:
    from deepshield.serve import serve

    cfg: ServeConfig = config_of(ServeConfig, args)
    serve(cfg)
    return 0


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help=SUMMARIES["serve"],
                       description="Serve a page where a video or image can be dropped to get the verdict, "
                                   "the per-frame fake probability, the face crops with Grad-CAM heatmaps "
                                   "and the attack alarm; the page's JSON API is at /api (docs at /docs). "
                                   "Binds 127.0.0.1 unless --host says otherwise; there is no login.")
    p.add_argument("--checkpoint", default="default",
                   help="best.pt of a training run, or a bundled detector: 'default' or 'robust' "
                        "(adversarially trained) (default: default)")
    p.add_argument("--models", type=parse_list, default=None,
                   help="comma-separated checkpoints the page may pick besides --checkpoint, each loaded on "
                        "first use (default: every bundled model: default, robust)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 opens it to the network (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="(default: 8000)")
    p.add_argument("--frames", type=positive_int, default=None,
                   help="frames sampled per video (default: as predict: the checkpoint's, else 32)")
    p.add_argument("--max-upload-mb", type=_positive_float, default=200.0,
                   help="largest upload in MB, enforced while it streams in (default: 200)")
    p.add_argument("--queue-limit", type=positive_int, default=4,
                   help="jobs waiting or running at once; more get HTTP 503 (default: 4)")
    p.add_argument("--job-timeout", type=_positive_float, default=120.0,
                   help="seconds a job may run before it is stopped (HTTP 504) (default: 120)")
    p.add_argument("--no-explain", dest="explain", action="store_false",
                   help="skip the Grad-CAM heatmaps (faster)")
    p.add_argument("--no-attack-check", dest="check_attack", action="store_false",
                   help="skip the attack alarm (faster)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_serve)
