"""A queue runs for days: does ``deepshield serve`` (or ``deepshield predict DIR``) keep its memory flat?

Serve mode (the default) starts ``deepshield serve`` as a subprocess on a free localhost port
(``HF_HUB_OFFLINE=1``: nothing is downloaded) and posts ``--n`` uploads one after another, cycling
through real FF++ dev clips (``ffpp`` + ``ffpp_extra``), DFDC face crops, and junk: random bytes named
.mp4, an empty file, a text file, and an upload just above the server's size limit (``--max-upload-mb``,
default the server's 200). Every answer must be JSON: 200 with a label for media, a 4xx ``{"error"}`` for
junk. After every upload it samples the RSS of the server and its child processes (``/proc``). Predict
mode (``--predict-dir``) runs ``deepshield predict`` over a temporary folder of ``--entries`` symlinks
repeating the dev clips, once with ``--workers 0`` and once with the default workers, sampling the RSS
of the process and its workers every second.

It prints RSS at start, after the warm-up (``--warmup`` uploads; for predict the first 15% of the run),
at the end, the max, the growth after warm-up in %, and whether it plateaued (end within +10% of the
post-warm-up RSS, the issue's bar), and the uploads' statuses. Run it ``nice``d on a shared machine.

    python benchmarks/serve_soak.py --n 40                 # a quick look
    python benchmarks/serve_soak.py                        # the issue's soak: 500 uploads
    python benchmarks/serve_soak.py --predict-dir --entries 300
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from machine import machine_line

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared/data/dev"
PLATEAU = 0.10        # the bar: after the warm-up, RSS stays within +10%
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def clips() -> list[Path]:
    found = sorted((DEV / "ffpp_extra").rglob("*.mp4")) + sorted((DEV / "ffpp").rglob("*.mp4"))
    if not found:
        raise SystemExit(f"no FF++ dev clips under {DEV}/ffpp_extra or {DEV}/ffpp")
    return found


def faces(limit: int = 64) -> list[Path]:
    found = sorted((DEV / "dfdc_faces").rglob("*.jpg"))[:limit]
    if not found:
        raise SystemExit(f"no DFDC face crops under {DEV}/dfdc_faces")
    return found


# ---------------------------------------------------------------- memory of a process tree (Linux /proc)

def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def rss_mb(pid: int) -> tuple[float, float]:
    """(RSS of ``pid``, RSS of ``pid`` and all its descendants) in MB; (0, 0) once it has exited."""
    tree, todo, total, own = _children(), [pid], 0.0, 0.0
    while todo:
        p = todo.pop()
        try:
            line = next(ln for ln in Path(f"/proc/{p}/status").read_text().splitlines()
                        if ln.startswith("VmRSS:"))
        except (OSError, StopIteration):   # exited, or a zombie without memory
            continue
        mb = int(line.split()[1]) / 1024
        total += mb
        own = mb if p == pid else own
        todo.extend(tree.get(p, []))
    return own, total


def summary(name: str, samples: list[float], warm: int, unit: str) -> str:
    """One line: start, post-warm-up, end, max; the medians of each tenth of the run after warm-up (single
    samples swing with the clips in flight); growth after warm-up (last tenth's median / first tenth's)
    and the plateau verdict on it."""
    start, after, end, top = samples[0], samples[min(warm, len(samples) - 1)], samples[-1], max(samples)
    busy = samples[min(warm, len(samples) - 1):]
    cuts = [i * len(busy) // 10 for i in range(11)]
    tenths = [statistics.median(busy[cuts[i]:max(cuts[i + 1], cuts[i] + 1)]) for i in range(10)]
    growth = tenths[-1] / tenths[0] - 1
    ok = growth <= PLATEAU
    return (f"{name}: RSS start {start:7.0f} MB, after warm-up ({warm} {unit}) {after:7.0f} MB, end "
            f"{end:7.0f} MB, max {top:7.0f} MB (after warm-up {max(busy):.0f}); medians of each tenth after "
            f"warm-up {' '.join(f'{t:.0f}' for t in tenths)} MB; growth after warm-up {growth:+.1%} (last "
            f"tenth / first; single samples {end / after - 1:+.1%}); plateau (<= +{PLATEAU:.0%}): "
            f"{'yes' if ok else 'NO'}")


# ---------------------------------------------------------------- serve soak

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, args: argparse.Namespace, log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "deepshield", "serve", "--port", str(port), "--checkpoint", args.checkpoint,
           "--max-upload-mb", str(args.max_upload_mb), "--job-timeout", "600", *args.serve_flags]
    proc = subprocess.Popen(cmd, env=ENV, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"deepshield serve exited ({proc.returncode}); see {log.name}")
        try:
            if httpx.get(f"{url}/api/health", timeout=5).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"deepshield serve did not answer /api/health within 300 s; see {log.name}")


def junk_files(folder: Path, limit_bytes: int) -> dict[str, tuple[Path, tuple[int, ...]]]:
    """The junk uploads and the statuses each may get: random bytes, empty, text, oversized."""
    rng = random.Random(0)
    files = {"random.mp4": rng.randbytes(300_000), "empty.mp4": b"",
             "notes.txt": b"not a video, just some text\n" * 200}
    out = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    out["random"] = (folder / "random.mp4", (415, 422))
    out["empty"] = (folder / "empty.mp4", (400,))
    out["text"] = (folder / "notes.txt", (415, 422))
    big = folder / "oversized.mp4"
    with big.open("wb") as f:                  # sparse: costs no disk, reads as zeros
        f.truncate(limit_bytes + 1_000_000)
    out["oversized"] = (big, (413,))
    return out


def schedule(n: int, junk: dict, videos: list[Path], images: list[Path]):
    """Upload i: every third is junk (rotating its kinds), the others real clips, every fourth of them a
    face image instead: (kind, path, statuses expected)."""
    clip_it, face_it, junk_it = itertools.cycle(videos), itertools.cycle(images), itertools.cycle(junk)
    for i in range(n):
        if i % 3 == 2:
            kind = next(junk_it)
            yield kind, *junk[kind]
        elif i % 4 == 1:
            yield "face", next(face_it), (200,)
        else:
            yield "clip", next(clip_it), (200,)


def post(client: httpx.Client, path: Path) -> tuple[int, dict | None, str]:
    """(status, JSON body or None, a note) of one upload; a dropped connection is status 0."""
    try:
        with path.open("rb") as f:
            r = client.post("/api/predict", files={"file": (path.name, f, "application/octet-stream")})
    except httpx.TransportError as err:
        return 0, None, f"{type(err).__name__}: {err}"
    try:
        body = r.json()
    except ValueError:
        return r.status_code, None, f"not JSON: {r.text[:120]!r}"
    return r.status_code, body if isinstance(body, dict) else None, ""


def check(kind: str, status: int, body: dict | None, expected: tuple[int, ...]) -> str:
    """'' when the answer is what this upload should get, else what is wrong."""
    if body is None or status not in expected:
        return f"{kind}: HTTP {status}, expected {expected}: {str(body)[:200]}"
    if status == 200 and "label" not in body:
        return f"{kind}: 200 without a label: {str(body)[:200]}"
    if status != 200 and not (isinstance(body.get("error"), str) and body["error"]):
        return f"{kind}: HTTP {status} without an 'error' message: {str(body)[:200]}"
    return ""


def serve_soak(args: argparse.Namespace) -> None:
    videos, images = clips(), faces()
    tmp = Path(tempfile.mkdtemp(prefix="serve-soak-"))
    before_tmp = set(Path(tempfile.gettempdir()).glob("deepshield-serve-*"))
    log = (tmp / "server.log").open("w")
    port = free_port()
    print(f"# deepshield serve soak: {args.n} uploads ({len(videos)} FF++ dev clips, DFDC faces, junk every "
          f"3rd), --checkpoint {args.checkpoint} {' '.join(args.serve_flags)}; {machine_line()}", flush=True)
    t0 = time.perf_counter()
    proc = start_server(port, args, log)
    try:
        health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10).json()
        junk = junk_files(tmp, int(health["max_upload_bytes"]))
        print(f"server pid {proc.pid} ready in {time.perf_counter() - t0:.1f} s; upload limit "
              f"{health['max_upload_bytes'] / 1e6:g} MB; explain {health.get('explain')}, attack check "
              f"{health.get('check_attack')}", flush=True)
        start_rss = rss_mb(proc.pid)[1]
        peak, done = [start_rss], threading.Event()   # the peak while jobs run, sampled every 0.5 s

        def watch() -> None:
            while not done.wait(0.5):
                peak[0] = max(peak[0], rss_mb(proc.pid)[1])

        threading.Thread(target=watch, daemon=True).start()
        samples, own, statuses, problems = [start_rss], [rss_mb(proc.pid)[0]], Counter(), []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=900) as client:
            for i, (kind, path, expected) in enumerate(schedule(args.n, junk, videos, images), 1):
                started = time.perf_counter()
                status, body, note = post(client, path)
                statuses[(kind, status)] += 1
                wrong = check(kind, status, body, expected)
                if wrong:
                    problems.append(f"#{i} {path.name}: {wrong} {note}")
                mine, total = rss_mb(proc.pid)
                samples.append(total)
                own.append(mine)
                if proc.poll() is not None:
                    raise SystemExit(f"the server died after upload {i} ({proc.returncode}); see {log.name}")
                if args.verbose or i % args.every == 0 or i == args.n:
                    print(f"  {i:4d} {kind:9s} {status} {time.perf_counter() - started:5.1f} s  RSS "
                          f"{total:7.0f} MB (server {mine:.0f})  {path.name}", flush=True)
        left = set(Path(tempfile.gettempdir()).glob("deepshield-serve-*")) - before_tmp
        done.set()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    took = time.perf_counter() - t0
    warm = min(args.warmup, args.n)
    print(f"statuses: {', '.join(f'{k} {s}: {c}' for (k, s), c in sorted(statuses.items()))}")
    print(f"answers: {args.n - len(problems)}/{args.n} as expected; upload folders left in "
          f"{tempfile.gettempdir()}: {len(left)}; {took / 60:.1f} min")
    for p in problems[:10]:
        print(f"  WRONG {p}")
    if args.csv:
        rows = (f"{i},{t:.1f},{o:.1f}\n" for i, (t, o) in enumerate(zip(samples, own, strict=True)))
        args.csv.write_text("upload,rss_total_mb,rss_server_mb\n" + "".join(rows))
    print(summary("serve", samples, warm, "uploads") + f"; peak during jobs {peak[0]:.0f} MB")


# ---------------------------------------------------------------- predict DIR

def long_folder(folder: Path, entries: int) -> None:
    videos = clips()
    for i, clip in zip(range(entries), itertools.cycle(videos)):
        (folder / f"{i:05d}_{clip.name}").symlink_to(clip)


def predict_run(folder: Path, workers: str | None, args: argparse.Namespace) -> tuple[list[float], float]:
    """RSS samples (MB, process + workers, every ``--interval`` s) of ``deepshield predict folder``."""
    cmd = [sys.executable, "-m", "deepshield", "predict", str(folder), "--checkpoint", args.checkpoint]
    cmd += ["--workers", workers] if workers is not None else []
    out = folder.parent / f"predict-{workers or 'default'}.log"
    start = time.perf_counter()
    with out.open("w") as log:
        proc = subprocess.Popen(cmd, env=ENV, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        samples: list[float] = []
        while proc.poll() is None:
            total = rss_mb(proc.pid)[1]
            if total:
                samples.append(total)
            time.sleep(args.interval)
    took = time.perf_counter() - start
    if proc.returncode not in (0, 3):
        raise SystemExit(f"deepshield predict failed ({proc.returncode}); see {out}")
    lines = [ln for ln in out.read_text().splitlines() if ln.strip()]
    print(f"  workers {workers or 'default'}: exit {proc.returncode}, {took:.0f} s "
          f"({args.entries / took:.2f} videos/s), {len(samples)} samples, log {out} ({len(lines)} lines)",
          flush=True)
    return samples, took


def predict_soak(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="predict-soak-"))
    folder = tmp / "uploads"
    folder.mkdir()
    long_folder(folder, args.entries)
    print(f"# deepshield predict DIR soak: {args.entries} entries (symlinks repeating the FF++ dev clips), "
          f"--checkpoint {args.checkpoint}; {machine_line()}", flush=True)
    for workers in args.workers:
        samples, took = predict_run(folder, None if workers == "default" else workers, args)
        # warm-up: the first 15% of the run (start-up, model load, workers spawned, first clips); the last
        # 5% is left out: the workers exit there, which would read as a drop
        busy = samples[:max(2, int(len(samples) * 0.95))]
        print(summary(f"predict --workers {workers}", busy, max(1, int(len(samples) * 0.15)), "s"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="uploads (default: 500)")
    ap.add_argument("--warmup", type=int, default=50, help="uploads counted as warm-up (default: 50)")
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--max-upload-mb", type=float, default=200.0, help="the server's limit (default: 200)")
    ap.add_argument("--no-explain", dest="serve_flags", action="append_const", const="--no-explain",
                    default=[], help="passed to deepshield serve (default: Grad-CAM on, as the server)")
    ap.add_argument("--no-attack-check", dest="serve_flags", action="append_const", const="--no-attack-check",
                    help="passed to deepshield serve")
    ap.add_argument("--every", type=int, default=10, help="print a progress line every this many uploads")
    ap.add_argument("--verbose", action="store_true", help="a line per upload")
    ap.add_argument("--csv", type=Path, default=None, help="write every RSS sample here")
    ap.add_argument("--predict-dir", action="store_true", help="measure deepshield predict DIR instead")
    ap.add_argument("--entries", type=int, default=300, help="predict mode: entries in the folder")
    ap.add_argument("--workers", nargs="+", default=["0", "default"], help="predict mode: --workers runs")
    ap.add_argument("--interval", type=float, default=1.0, help="predict mode: seconds between samples")
    args = ap.parse_args()
    predict_soak(args) if args.predict_dir else serve_soak(args)


if __name__ == "__main__":
    main()
