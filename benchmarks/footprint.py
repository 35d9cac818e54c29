"""Peak memory of a whole `edge-opt run` across its processes, beside its wall time.

Starts `edge-opt run CONFIG` and samples, every 0.1 s, the proportional set size (PSS, from
/proc/PID/smaps_rollup) of the run's process and every descendant (evaluation workers, probes,
exporters, Ray workers started for it). PSS divides a shared page among the processes that map
it, so the sum counts shared pages (torch's libraries, forked copies) once. It prints the peak of
the sum, when it happened, the run's stage then (from run_status.json) and each process's share
at that moment; the peak per stage; and the wall time. With --against REV the same is measured,
back to back, for revision REV running its own configs/default.yaml from a temporary git
worktree (e.g. 46751a4), and the two are printed as ratios. Run it on a quiet machine.

    .venv/bin/python benchmarks/footprint.py [--config configs/default.yaml] [--against REV]
        [--set KEY=VALUE ...] [--keep DIR]

This tree's run is `python -m edge_opt.cli run` with this interpreter and the caller's
environment, so `PYTHONPATH=src` measures the checkout's code rather than the installed one.
--keep DIR writes that run to DIR (a fresh directory) and keeps it, to compare its results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _runs import REPO  # benchmarks/ is on sys.path when a script runs from it

INTERVAL_S = 0.1


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _descendants(root: int) -> list[int]:
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:  # the process ended between the listing and the read
        pass
    return 0


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _name(pid: int, child_of_same: bool = True) -> str:
    """A process's name: its command, or what edge-opt's inline scripts are (a probe server's
    forked child has the server's command line)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    if child_of_same:
        parent = _name(_parent(pid), child_of_same=False)
        if parent.endswith("(peak-RSS probe server)") and _name(pid, False) == parent:
            return "python -c (peak-RSS probe child, forked)"
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:
        return "?"
    if len(words) > 1 and words[0].endswith(("python", "python3", "python3.11")):
        words = words[1:]
    if words[0] == "-c":  # edge-opt's probe server, or another inline script
        return "python -c " + ("(peak-RSS probe server)" if "clear_refs" in words[1] else "...")
    return " ".join([Path(words[0]).name, *words[1:3]])[:60]


@dataclass
class Footprint:
    wall_s: float = 0.0
    peak_kib: int = 0
    peak_at_s: float = 0.0
    peak_stage: str = ""
    peak_parts: list[tuple[str, int]] = field(default_factory=list)
    by_stage: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    timings_s: dict[str, float] = field(default_factory=dict)


def _stage(out: Path) -> str:
    try:
        return str(json.loads((out / "run_status.json").read_text()).get("stage", "?"))
    except (OSError, ValueError):
        return "starting"


def measure(command: list[str], out: Path, env: dict[str, str] | None = None) -> Footprint:
    """Run ``command`` (which writes its run to ``out``) and sample its process tree."""
    result = Footprint()
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    done = threading.Event()
    stderr: list[bytes] = []
    reader = threading.Thread(target=lambda: (stderr.append(proc.stderr.read()), done.set()))
    reader.start()
    while proc.poll() is None:
        parts = [(pid, _pss_kib(pid)) for pid in _descendants(proc.pid)]
        total = sum(kib for _, kib in parts)
        stage = _stage(out)
        result.samples += 1
        result.by_stage[stage] = max(result.by_stage.get(stage, 0), total)
        if total > result.peak_kib:
            result.peak_kib, result.peak_at_s, result.peak_stage = (
                total,
                time.perf_counter() - start,
                stage,
            )
            result.peak_parts = sorted(
                ((f"{pid} {_name(pid)}", kib) for pid, kib in parts if kib),
                key=lambda item: -item[1],
            )
        time.sleep(INTERVAL_S)
    result.wall_s = time.perf_counter() - start
    reader.join()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{b''.join(stderr).decode()[-3000:]}")
    try:
        result.timings_s = json.loads((out / "summary.json").read_text()).get("timings_s", {})
    except (OSError, ValueError):
        pass
    return result


def _show(title: str, fp: Footprint) -> None:
    print(f"## {title}")
    print(f"wall time {fp.wall_s:.1f} s, {fp.samples} samples")
    print(
        f"peak PSS over the process tree: {fp.peak_kib / 1024:.0f} MiB "
        f"at {fp.peak_at_s:.1f} s (stage {fp.peak_stage})"
    )
    for name, kib in fp.peak_parts:
        print(f"    {kib / 1024:7.0f} MiB  {name}")
    print("peak per stage (status file's stage names):")
    for stage, kib in fp.by_stage.items():
        print(f"    {kib / 1024:7.0f} MiB  {stage}")
    if fp.timings_s:
        print("stage timings (summary.json):")
        for name, seconds in fp.timings_s.items():
            print(f"    {seconds:7.1f} s  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--against", help="a git revision to measure first, the same way")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--keep", metavar="DIR", help="write this tree's run to DIR and keep it")
    args = parser.parse_args()
    sets = [a for item in args.set for a in ("--set", item)]
    with tempfile.TemporaryDirectory(prefix="edge-opt-footprint-") as tmp:
        other = None
        if args.against:
            tree = Path(tmp) / "tree"
            subprocess.run(
                ["git", "worktree", "add", "--detach", "-q", str(tree), args.against],
                cwd=REPO,
                check=True,
            )
            try:
                env = {**os.environ, "PYTHONPATH": str(tree / "src")}
                out = Path(tmp) / "against"
                command = [sys.executable, "-m", "edge_opt.cli", "run"]
                command += [str(tree / "configs/default.yaml"), "-o", str(out)]
                other = measure(command, out, env)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO)
            _show(f"{args.against} (its own configs/default.yaml)", other)
        out = Path(args.keep) if args.keep else Path(tmp) / "run"
        command = [sys.executable, "-m", "edge_opt.cli", "run", args.config, "-o", str(out)]
        this = measure([*command, *sets], out, dict(os.environ))
        _show(f"this tree: {args.config} {' '.join(args.set)}".strip(), this)
        if other is not None:
            print(
                f"ratio this/{args.against}: peak PSS {this.peak_kib / other.peak_kib:.2f}x, "
                f"wall time {this.wall_s / other.wall_s:.2f}x"
            )


if __name__ == "__main__":
    main()
