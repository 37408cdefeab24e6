"""The ablation study (paper Tables 4-6) as one command: rows x seeds on the miniature protocol, one table.

    uv run python ablate.py                                   # every configs/ablations row, seeds 0 1 2
    uv run python ablate.py --rows table4 --seeds 0 1 2       # the rows whose file name starts with table4
    uv run python ablate.py --rows table5 table6 --seeds 0 1 --jobs 2

Every row-seed is ``train.py --config configs/ablations/<row>.yaml --base configs/default.yaml --set
run.seed=<seed>`` in its own process (``OMP_NUM_THREADS=1``), ``--jobs`` at a time, so all rows train stage 2
for the same budget on the same frozen stage-1 backbone, which is made once, first. A row-seed whose
``results.json`` is complete is skipped, so rerunning the command after an interruption resumes it; rows whose
resolved configs are equal (Table 5 (d) and Table 6 (d) are Table 4 (c)) run once. The table (mean +- sample
std over seeds of H, and of H_m and H_k scored alone, beside the paper's number from each file's first line)
is printed and written to ``<out>/results.md``.
"""

import argparse
import dataclasses
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from posetrack_data.outputs import CommandParser, atomic_write_text, run_guarded
from training.config import DEFAULT_CONFIG, ConfigError, load_config, run_key
from training.evaluation import final_scores

REPO_DIR = Path(__file__).resolve().parent
ABLATIONS = REPO_DIR / "configs" / "ablations"
PAPER_MAP = re.compile(r"^# (Table \d)[, ]+(.*?) \(([\d.]+) mAP\)")


@dataclasses.dataclass(frozen=True)
class Row:
    """One ablation file: its name, the paper's table, row label and mAP, and its ``run_key``."""

    name: str
    table: str
    label: str
    paper: float
    key: str


def load_rows(base: Path, overrides: list[str]) -> list[Row]:
    """Every ablation file, in file-name order."""
    rows = []
    for path in sorted(ABLATIONS.glob("*.yaml")):
        match = PAPER_MAP.match(path.read_text().splitlines()[0])
        if match is None:
            raise ConfigError(f"{path}: first line must read '# Table N (x) (NN.N mAP): ...'")
        key = run_key(load_config(path, overrides, base=base))  # equal resolved configs, equal keys
        rows.append(Row(path.stem, match[1], match[2], float(match[3]), key))
    return rows


def select_rows(rows: list[Row], patterns: list[str]) -> list[Row]:
    """The rows whose file names start with any pattern."""
    selected = [row for row in rows if any(row.name.startswith(p) for p in patterns)]
    if not selected:
        raise ConfigError(f"--rows {' '.join(patterns)}: no file in {ABLATIONS} starts with that")
    return selected


def run_dir(out: Path, rows: list[Row], row: Row, seed: int) -> Path:
    """Where a row-seed trains: named after the first row (by file name) of ``rows`` with the same resolved config.

    ``main`` passes every ablation file as ``rows``, so ``--rows table5`` after ``--rows table4`` reuses Table 4
    (c)'s runs for Table 5 (d).
    """
    first = min(r.name for r in rows if r.key == row.key)
    return out / first / f"seed{seed}"


def train(row: Row, seed: int, directory: Path, args: argparse.Namespace) -> None:
    """One row-seed, in its own process; the log beside the run directory."""
    shutil.rmtree(directory, ignore_errors=True)  # an interrupted run restarts from scratch
    directory.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(REPO_DIR / "train.py"), "--config", str(ABLATIONS / f"{row.name}.yaml")]
    command += ["--base", str(args.base), "--set", f"run.seed={seed}", f"run.output_dir={directory}", *args.set]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    with open(directory.with_suffix(".log"), "w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    took = f"{time.monotonic() - start:.0f} s wall"
    status = f"done, {took}" if result.returncode == 0 else f"FAILED (exit {result.returncode}, see {log.name})"
    _say(f"{row.name} seed {seed}: {status}")


def table(rows: list[Row], every: list[Row], seeds: list[int], out: Path) -> str:
    """Markdown: one line per row, mean +- std over the seeds that finished."""

    def spread(values: list[float]) -> str:
        if not values:
            return "-"
        std = f" +- {statistics.stdev(values):.1f}" if len(values) > 1 else ""
        return f"{statistics.fmean(values):.1f}{std}"

    lines = [
        "| table | row | config | paper mAP | H (mAP) | H_m alone | H_k alone | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        results = [r for s in seeds if (r := final_scores(run_dir(out, every, row, s))) is not None]
        heads = [spread([r[h] for r in results if h in r]) for h in ("H", "H_m", "H_k")]
        lines.append(
            f"| {row.table} | {row.label} | `{row.name}` | {row.paper:.1f} | {' | '.join(heads)} | {len(results)} |"
        )
    return "\n".join(lines) + "\n"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Stage 1 once, the missing row-seeds in parallel, then the table; exit 1 unless every row-seed finished."""
    parser = CommandParser(prog="ablate.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", default=["table"], help="ablation file names or their prefixes")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="row-seeds trained at once")
    parser.add_argument("--base", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--out", type=Path, default=Path("runs/ablate"))
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="train.py overrides, every row")
    args = parser.parse_args(argv)
    return run_guarded("ablate.py", lambda: run_study(args), (ConfigError,))


def run_study(args: argparse.Namespace) -> int:
    """`main` after parsing: a mistake raises, and the boundary makes it one line."""
    every = load_rows(args.base, args.set)  # equal configs share runs across invocations too
    rows = select_rows(every, args.rows)

    # Stage 1 once, before the parallel rows, so they share it instead of racing to make it.
    stage1 = [sys.executable, str(REPO_DIR / "train.py"), "--pretrain-only", "--base", str(args.base)]
    stage1 += ["--config", str(ABLATIONS / f"{rows[0].name}.yaml"), *(["--set", *args.set] if args.set else [])]
    if subprocess.run(stage1, env=os.environ | {"OMP_NUM_THREADS": "1"}, check=False).returncode != 0:
        sys.stderr.write("ablate.py: error: stage 1 failed\n")
        return 1
    todo = {}
    for row in rows:
        for seed in args.seeds:
            directory = run_dir(args.out, every, row, seed)
            if final_scores(directory) is None and directory not in todo:
                todo[directory] = (row, seed)
    _say(f"{len(todo)} row-seed(s) to train, {args.jobs} at a time")
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(lambda item: train(*item[1], item[0], args), todo.items()))

    text = table(rows, every, args.seeds, args.out)
    atomic_write_text(args.out / "results.md", text)
    _say(f"\n{text}\nwritten to {args.out / 'results.md'}")
    complete = all(final_scores(run_dir(args.out, every, r, s)) is not None for r in rows for s in args.seeds)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
