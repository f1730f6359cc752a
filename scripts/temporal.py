"""Issue 21, item 3: does a temporal head over frame embeddings beat averaging frame scores?

At equal compute (the same T evenly spaced face crops per video, one frame-model pass each), on
group-disjoint folds (a fake and its source real are always in the same fold):

1. extract, once per frame checkpoint, each video's T per-frame embeddings (the classifier's input) and
   fake log-odds (cached in ``<out>/features.npz``, resumed video by video);
2. per fold: train the temporal head (:mod:`deepshield.models.temporal`) on the fold's ``train``
   videos, early-stopped on its ``val`` videos (BCE), for several seeds; score the ``test`` videos;
3. pool the out-of-fold scores: video AUC of every frame-score aggregation (``mean``, ``median``,
   ``top50``, ``mean_logodds``, ``topk_logodds``) and of the heads, overall, per fold and per fake
   method (each method against all reals), with a paired bootstrap CI of each row minus ``mean``.

A ``--checkpoint`` containing ``{fold}`` is one frame model per fold (e.g. fine-tuned on that fold's
``train`` videos): fold k's features come from checkpoint k (cached in ``<out>/features-fold{k}.npz``),
so fold k's head is trained, early-stopped and tested on them, and every aggregation row scores fold
k's test videos with checkpoint k too. Note that the head then trains on videos its frame model was
trained on (in-sample embeddings); its ``val`` videos, where it early-stops, were only used to pick
the frame model's epoch.

Writes ``<out>/temporal.json`` and ``<out>/temporal.md``. ``--save-head FILE`` then trains the head on
every video (for the median early-stopping step of the folds) and writes a self-contained video
checkpoint (one frame checkpoint only).

    python scripts/temporal.py --checkpoint src/deepshield/models/weights/default.pt \\
        --folds runs/cross/folds --frames 16 --out runs/temporal/default
    python scripts/temporal.py --checkpoint 'runs/cross/dfdc+ffpp-fold{fold}/best.pt' \\
        --out runs/temporal/dfdc+ffpp
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from deepshield.contracts.aggregate import AGGREGATIONS
from deepshield.io import atomic_write, write_json_atomic, write_text_atomic
from deepshield.models.temporal import HeadConfig, TemporalHead, even_indices

AGGS = ("mean", "median", "top50", "mean_logodds", "topk_logodds")
# The temporal head; the same head blind to frame order (kernel 1: is any gain from time, or only from a
# head trained on the target data?); a temporal head over the frame log-odds alone.
HEADS = {"head": HeadConfig(width=64, embeddings=True, dropout=0.1),
         "head_no_time": HeadConfig(width=64, embeddings=True, dropout=0.1, kernel=1),
         "head_logodds_only": HeadConfig(width=8, embeddings=False, dropout=0.0)}


@dataclass(frozen=True)
class Features:
    """Per video (sorted keys): embeddings [V, T, D] and log-odds [V, T] of its first ``n`` [V] frames
    (rows past n are zero), label [V] (1 = fake), method [V]."""

    keys: list[str]
    emb: np.ndarray
    lo: np.ndarray
    n: np.ndarray
    label: np.ndarray
    method: list[str]

    def frames(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.emb[i, : self.n[i]], self.lo[i, : self.n[i]]


@dataclass(frozen=True)
class TrainSpec:
    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-2
    eval_every: int = 10
    seed: int = 0


# --------------------------------------------------------------------------------------- extraction

def _identity(checkpoint: Path, catalog: Path, frames: int) -> str:
    """What the cached features depend on: the checkpoint file, the catalog's crops, T."""
    st = checkpoint.stat()
    text = f"{checkpoint.resolve()}|{st.st_size}|{st.st_mtime_ns}|{catalog.resolve()}|{frames}"
    return hashlib.sha1(text.encode()).hexdigest()


def _load_cache(path: Path, identity: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if not path.is_file():
        return {}
    z = np.load(path, allow_pickle=False)
    if str(z["identity"]) != identity:
        print(f"{path}: made with another checkpoint or T, extracting again")
        return {}
    return {k: (z["emb"][i, : z["n"][i]], z["lo"][i, : z["n"][i]]) for i, k in enumerate(z["keys"])}


def _save_cache(path: Path, identity: str, done: dict[str, tuple[np.ndarray, np.ndarray]], t: int) -> None:
    keys = sorted(done)
    d = next(iter(done.values()))[0].shape[1]
    emb, lo = np.zeros((len(keys), t, d), np.float32), np.zeros((len(keys), t), np.float32)
    n = np.array([len(done[k][1]) for k in keys], dtype=np.int64)
    for i, k in enumerate(keys):
        emb[i, : n[i]], lo[i, : n[i]] = done[k]
    data = _npz_bytes(identity=np.array(identity), keys=np.array(keys), emb=emb, lo=lo, n=n)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def extract(checkpoint: str, catalog: Path, frames: int, cache: Path, device: torch.device) -> Features:
    """The features of every video of ``catalog`` (T = ``frames`` evenly spaced crops), cached."""
    from deepshield.data.datasets import FaceCatalogDataset
    from deepshield.models.loading import load_model_and_config, resolve_checkpoint
    from deepshield.models.temporal import embed_frames

    model, cfg, _ = load_model_and_config(checkpoint, device)
    identity = _identity(resolve_checkpoint(checkpoint), catalog, frames)
    ds = FaceCatalogDataset(catalog, image_size=cfg.image_size)
    done = _load_cache(cache, identity)
    todo = [k for k in ds.videos if k not in done]
    print(f"features: {len(done)} videos cached, {len(todo)} to extract "
          f"({cfg.backbone}, {cfg.image_size} px)")
    for j, key in enumerate(todo):
        rows = ds.videos[key]
        rows = [rows[i] for i in even_indices(len(rows), frames)] if len(rows) > frames else rows
        x = torch.stack([ds.finish(ds.load_uint8(r), 0) for r in rows]).to(device)
        emb, lo = embed_frames(model, x)
        done[key] = (emb.cpu().numpy(), lo.cpu().numpy())
        if (j + 1) % 16 == 0 or j + 1 == len(todo):
            _save_cache(cache, identity, done, frames)
            print(f"  {len(done)}/{len(ds.videos)} videos")
    keys = sorted(ds.videos)
    _save_cache(cache, identity, {k: done[k] for k in keys}, frames)
    z = np.load(cache)
    return Features(keys, z["emb"], z["lo"], z["n"], np.array([ds.video_labels[k] for k in keys]),
                    [ds.video_methods[k] for k in keys])


def fold_checkpoints(checkpoint: str, n_folds: int) -> list[str]:
    """The frame checkpoint of each fold: ``checkpoint`` with ``{fold}`` replaced by 0 .. n_folds - 1, or
    ``checkpoint`` itself for every fold."""
    return [checkpoint.replace("{fold}", str(k)) for k in range(n_folds)]


def extract_folds(checkpoint: str, catalog: Path, frames: int, out: Path, device: torch.device,
                  n_folds: int) -> list[Features]:
    """Per fold, the features of every video by that fold's frame checkpoint (one extraction, shared by
    every fold, when ``checkpoint`` has no ``{fold}``)."""
    if "{fold}" not in checkpoint:
        return [extract(checkpoint, catalog, frames, out / "features.npz", device)] * n_folds
    paths = fold_checkpoints(checkpoint, n_folds)
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"--checkpoint {checkpoint}: {', '.join(missing)} not found; train those folds "
                         "first")
    return [extract(p, catalog, frames, out / f"features-fold{k}.npz", device) for k, p in enumerate(paths)]


def read_folds(folds: Path, keys: list[str]) -> list[dict[str, str]]:
    """Per fold (``fold*/catalog.csv`` under ``folds``): video key -> split (train / val / test)."""
    from deepshield.data.catalog import read_catalog

    out = []
    for cat in sorted(folds.glob("fold*/catalog.csv")):
        split = {r.video_key: r.split for r in read_catalog(cat)}
        missing = set(keys) - set(split)
        if missing:
            raise SystemExit(f"{cat}: {len(missing)} videos of the features are not in this fold catalog")
        out.append(split)
    if not out:
        raise SystemExit(f"no fold catalogs under {folds} (expected fold0/catalog.csv, ...)")
    return out


# ------------------------------------------------------------------------------------------ the head

def batch(f: Features, idx: np.ndarray, t: int, rng: np.random.Generator | None = None,
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, T, D] and [B, T] of the videos ``idx``: their frames resampled to T evenly; with ``rng``, a
    random temporal crop (>= half the frames) and frame dropout (p = 0.2, >= 2 kept) first."""
    embs, los = [], []
    for i in idx:
        n = int(f.n[i])
        keep = np.arange(n)
        if rng is not None and n > 2:
            m = int(rng.integers(max(2, n // 2), n + 1))
            start = int(rng.integers(0, n - m + 1))
            keep = keep[start: start + m]
            drop = rng.random(len(keep)) < 0.2
            keep = keep[~drop] if (~drop).sum() >= 2 else keep
        ix = keep[even_indices(len(keep), t)]
        embs.append(f.emb[i, ix])
        los.append(f.lo[i, ix])
    return torch.from_numpy(np.stack(embs)), torch.from_numpy(np.stack(los))


def _bce(head: TemporalHead, f: Features, idx: np.ndarray, t: int, pos_weight: torch.Tensor) -> float:
    with torch.no_grad():
        emb, lo = batch(f, idx, t)
        y = torch.from_numpy(f.label[idx]).float()
        return float(torch.nn.functional.binary_cross_entropy_with_logits(head(emb, lo), y,
                                                                          pos_weight=pos_weight))


def train_head(f: Features, train: np.ndarray, val: np.ndarray | None, hcfg: HeadConfig, spec: TrainSpec,
               ) -> tuple[TemporalHead, int]:
    """A head trained full-batch on ``train`` (classes balanced by pos_weight, augmented batches), kept at
    the step of lowest ``val`` BCE (step 0 = log-odds averaging), or at the last step without ``val``."""
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    head = TemporalHead(hcfg)
    opt = torch.optim.AdamW(head.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    y_all = torch.from_numpy(f.label).float()
    pos_weight = (1 - y_all[train]).sum().clamp(min=1) / y_all[train].sum().clamp(min=1)
    best = (float("inf"), 0, {k: v.clone() for k, v in head.state_dict().items()})
    for step in range(spec.steps + 1):
        if val is not None and step % spec.eval_every == 0:
            head.eval()
            loss = _bce(head, f, val, hcfg.frames, pos_weight)
            if loss < best[0] - 1e-6:
                best = (loss, step, {k: v.clone() for k, v in head.state_dict().items()})
        if step == spec.steps:
            break
        head.train()
        emb, lo = batch(f, train, hcfg.frames, rng)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(emb, lo), y_all[train],
                                                                    pos_weight=pos_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if val is not None:
        head.load_state_dict(best[2])
    return head.eval(), (best[1] if val is not None else spec.steps)


def head_logits(head: TemporalHead, f: Features, idx: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return head(*batch(f, idx, head.cfg.frames)).numpy().astype(np.float64)


# ----------------------------------------------------------------------------------------- scoring

def aggregation_scores(f: Features) -> dict[str, np.ndarray]:
    """Every video's score under each frame-score aggregation of the same frames."""
    probs = [1 / (1 + np.exp(-f.frames(i)[1].astype(np.float64))) for i in range(len(f.keys))]
    return {a: np.array([AGGREGATIONS[a](p) for p in probs]) for a in AGGS}


def _parts(f: Features, split: dict[str, str]) -> dict[str, np.ndarray]:
    """Indices into ``f`` of the fold's train, val and test videos."""
    return {s: np.array([i for i, key in enumerate(f.keys) if split[key] == s], dtype=np.int64)
            for s in ("train", "val", "test")}


def out_of_fold_aggregations(feats: list[Features], folds: list[dict[str, str]]) -> dict[str, np.ndarray]:
    """Every aggregation's video scores [V], fold k's test videos scored on fold k's features."""
    rows = {a: np.full(len(feats[0].keys), np.nan) for a in AGGS}
    for f, split in zip(feats, folds, strict=True):
        test = _parts(f, split)["test"]
        for a, s in aggregation_scores(f).items():
            rows[a][test] = s[test]
    return rows


def out_of_fold_heads(feats: list[Features], folds: list[dict[str, str]], seeds: int, spec: TrainSpec,
                      ) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
    """Per head variant: out-of-fold logits [seeds, V] (fold k's head on fold k's features) and the
    early-stopping steps chosen."""
    scores = {name: np.full((seeds, len(feats[0].keys)), np.nan) for name in HEADS}
    steps: dict[str, list[int]] = {name: [] for name in HEADS}
    for k, (f, split) in enumerate(zip(feats, folds, strict=True)):
        part = _parts(f, split)
        for name, hcfg in HEADS.items():
            hcfg = replace(hcfg, frames=f.emb.shape[1], dim=f.emb.shape[2])
            for s in range(seeds):
                head, step = train_head(f, part["train"], part["val"], hcfg, replace(spec, seed=s))
                scores[name][s, part["test"]] = head_logits(head, f, part["test"])
                steps[name].append(step)
        print(f"fold {k}: train {len(part['train'])} val {len(part['val'])} test {len(part['test'])} videos; "
              + ", ".join(f"{n} steps {steps[n][-seeds:]}" for n in HEADS))
    return scores, steps


def auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if len(set(y.tolist())) == 2 else float("nan")


def _rank_auc(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """AUC of each row of scores s [R, N] for labels y [R, N] (Mann-Whitney, ties averaged)."""
    from scipy.stats import rankdata

    r = rankdata(s, axis=1)
    pos = y.sum(1)
    neg = y.shape[1] - pos
    return ((r * y).sum(1) - pos * (pos + 1) / 2) / (pos * neg)


def bootstrap_diff(y: np.ndarray, s: np.ndarray, ref: np.ndarray, n: int = 2000, seed: int = 0,
                   ) -> tuple[float, float]:
    """95% paired bootstrap interval (resampling videos) of AUC(s) - AUC(ref)."""
    i = np.random.default_rng(seed).integers(0, len(y), (n, len(y)))
    yi = y[i]
    ok = (yi.sum(1) > 0) & (yi.sum(1) < len(y))
    d = _rank_auc(yi[ok], s[i][ok]) - _rank_auc(yi[ok], ref[i][ok])
    lo, hi = np.percentile(d, [2.5, 97.5])
    return float(lo), float(hi)


def summarize(f: Features, folds: list[dict[str, str]], rows: dict[str, np.ndarray],
              per_seed: dict[str, list[float]]) -> dict:
    """AUC of every row: pooled out-of-fold, per fold, per method; CI of the difference to ``mean``."""
    fold_of = np.array([next(k for k, sp in enumerate(folds) if sp[key] == "test") for key in f.keys])
    methods = sorted({m for m, y in zip(f.method, f.label, strict=True) if y == 1})
    real = f.label == 0
    out = {}
    for name, s in rows.items():
        by_method = {m: auc(f.label[real | (np.array(f.method) == m)], s[real | (np.array(f.method) == m)])
                     for m in methods}
        out[name] = {"auc": auc(f.label, s), "fold_auc": [auc(f.label[fold_of == k], s[fold_of == k])
                                                          for k in range(len(folds))],
                     "by_method": by_method,
                     "diff_vs_mean": auc(f.label, s) - auc(f.label, rows["mean"]),
                     "diff_ci95": bootstrap_diff(f.label, s, rows["mean"]) if name != "mean" else [0.0, 0.0]}
        if name in per_seed:
            out[name]["seed_auc"] = per_seed[name]
    counts = {m: int(sum(1 for x in f.method if x == m)) for m in [*methods, "original"]}
    return {"videos": len(f.keys), "fakes": int(f.label.sum()), "reals": int(real.sum()),
            "frames": int(f.emb.shape[1]), "videos_by_method": counts, "rows": out}


def markdown(result: dict) -> str:
    rows = result["rows"]
    methods = list(next(iter(rows.values()))["by_method"])
    head = ["video score", "AUC (pooled OOF)", "Δ vs mean [95% CI]", "per fold", *methods]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        label = name + (f" ({len(r['seed_auc'])}-seed ensemble; seeds {np.mean(r['seed_auc']):.3f} ± "
                        f"{np.std(r['seed_auc']):.3f})" if "seed_auc" in r else "")
        lo, hi = r["diff_ci95"]
        ci = "" if name == "mean" else f"{r['diff_vs_mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
        cells = [label, f"{r['auc']:.3f}", ci, " / ".join(f"{a:.3f}" for a in r["fold_auc"]),
                 *(f"{r['by_method'][m]:.3f}" for m in methods)]
        lines.append("| " + " | ".join(cells) + " |")
    n = result["videos_by_method"]
    return ("\n".join(lines)
            + f"\n\n{result['videos']} videos ({result['reals']} real, {result['fakes']} fake: "
            + ", ".join(f"{m} {c}" for m, c in n.items() if m != "original")
            + f"), {result['frames']} frames each for every row (equal compute).\n")


def run(feats: list[Features], folds: list[dict[str, str]], seeds: int, spec: TrainSpec,
        ) -> tuple[dict, dict]:
    """The comparison: every aggregation and head variant, out of fold (``feats[k]``: fold k's features,
    the same videos in the same order). Also returns the chosen steps."""
    f = feats[0]
    rows = out_of_fold_aggregations(feats, folds)
    logits, steps = out_of_fold_heads(feats, folds, seeds, spec)
    per_seed = {name: [auc(f.label, s) for s in logits[name]] for name in HEADS}
    rows.update({name: logits[name].mean(0) for name in HEADS})  # the seeds' mean logit: still one pass
    result = summarize(f, folds, rows, per_seed)
    result["steps"] = steps
    result["train"] = asdict(spec)
    result["heads"] = {n: asdict(h) for n, h in HEADS.items()}
    return result, steps


def save_head(f: Features, checkpoint: str, path: Path, name: str, steps: list[int], spec: TrainSpec,
              metrics: dict) -> Path:
    """Train ``name`` on every video for the median early-stopping step of the folds; write a video
    checkpoint that embeds the frame checkpoint."""
    from deepshield.models.loading import load_checkpoint, load_model_and_config, resolve_checkpoint
    from deepshield.models.temporal import VideoModel, save_video_model

    n_steps = max(1, int(np.median(steps)))
    hcfg = replace(HEADS[name], frames=f.emb.shape[1], dim=f.emb.shape[2])
    head, _ = train_head(f, np.arange(len(f.keys)), None, hcfg, replace(spec, steps=n_steps))
    frame_model, cfg, _ = load_model_and_config(checkpoint, torch.device("cpu"))
    video = VideoModel(frame_model, head, cfg.image_size)
    out = save_video_model(path, video, load_checkpoint(resolve_checkpoint(checkpoint)),
                           metrics={**metrics, "trained_steps": n_steps, "videos": len(f.keys)})
    print(f"wrote {out} ({name}, {n_steps} steps on all {len(f.keys)} videos)")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="default",
                   help="frame model: a bundled name or a best.pt; with {fold}, one per fold")
    p.add_argument("--folds", type=Path, default=Path("runs/cross/folds"), help="folder of fold*/catalog.csv")
    p.add_argument("--frames", type=int, default=16, help="T: evenly spaced frames per video, for every row")
    p.add_argument("--out", type=Path, default=Path("runs/temporal/default"))
    p.add_argument("--seeds", type=int, default=5,
                   help="head trainings per fold (their mean logit is scored)")
    p.add_argument("--steps", type=int, default=TrainSpec.steps)
    p.add_argument("--device", default="cpu")
    p.add_argument("--save-head", type=Path, default=None,
                   help="also write a video checkpoint trained on all")
    p.add_argument("--save-variant", default="head", choices=list(HEADS),
                   help="which head --save-head trains")
    args = p.parse_args(argv)
    # One thread: the heads are tiny, and two threads spinning against a training on a busy 2-core
    # machine made a 1-minute run take over 15.
    torch.set_num_threads(1)
    if args.save_head is not None and "{fold}" in args.checkpoint:
        raise SystemExit("--save-head trains on every video: give one frame checkpoint trained on them all "
                         "(e.g. runs/cross/dfdc+ffpp-all/best.pt), not a {fold} template")
    catalogs = sorted(args.folds.glob("fold*/catalog.csv"))
    if not catalogs:
        raise SystemExit(f"no fold catalogs under {args.folds} (expected fold0/catalog.csv, ...)")
    feats = extract_folds(args.checkpoint, catalogs[0], args.frames, args.out, torch.device(args.device),
                          len(catalogs))
    f = feats[0]
    folds = read_folds(args.folds, f.keys)
    spec = TrainSpec(steps=args.steps)
    result, steps = run(feats, folds, args.seeds, spec)
    result.update(checkpoint=str(args.checkpoint), folds=str(args.folds),
                  fold_checkpoints=fold_checkpoints(args.checkpoint, len(folds)))
    md = markdown(result)
    write_json_atomic(args.out / "temporal.json", result)
    write_text_atomic(args.out / "temporal.md", md)
    print(md)
    if args.save_head is not None:
        rows = result["rows"]
        save_head(f, args.checkpoint, args.save_head, args.save_variant, steps[args.save_variant], spec,
                  {"oof_auc": rows[args.save_variant]["auc"], "oof_auc_frame_mean": rows["mean"]["auc"]})


if __name__ == "__main__":
    main()
