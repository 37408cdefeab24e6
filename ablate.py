"""The ablation study (paper Tables 4-6) as one resumable command: rows x seeds, paired statistics, one report.

    uv run python ablate.py                                # the study of configs/study.yaml: every row, its seeds
    uv run python ablate.py --rows table4 --seeds 0 1 2    # the rows whose names start with table4, three seeds
    uv run python ablate.py --split val --set data.test_split=null --out runs/dev   # a study of the dev split

Every row-seed is ``train.py --config configs/ablations/<row>.yaml --base configs/default.yaml --set
run.seed=<seed>`` in its own process (``OMP_NUM_THREADS=1``), ``--jobs`` at a time, after stage 1 has been made
once, so every row trains stage 2 for the same budget on the same frozen backbone and is scored on the same
videos. Rows whose resolved configs are equal (Table 5 (d) and Table 6 (d) are Table 4 (c)) train once.

Resuming: a row-seed whose ``results.json`` names the run key it would be trained with, and whose prediction
files still score as that file records, is reused; one without a finished ``results.json`` (interrupted) is
trained again; one that holds another run (a key from other settings) stops the command unless
``--overwrite``. Rerunning the command after an interruption therefore continues it.

The report (``training.statistics``): per row, the mean AP over seeds of H on the scored split, overall and per
key-frame condition, with 95% intervals from a bootstrap over seeds and videos, beside the paper's number; per
difference of the study file, the paired difference with its interval. Written to ``<out>/results.md`` and
``<out>/study.json`` (files ``ablate.py`` did not write there are replaced only with ``--overwrite``).
"""

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from posetrack_data import PoseTrackFormatError
from posetrack_data.outputs import (
    CommandParser,
    OutputError,
    OutputPolicy,
    atomic_write_text,
    file_sha256,
    run_guarded,
)
from posetrack_eval import EvalInputError
from posetrack_eval.resampling import resampled_ap, sequence_statistics
from training.config import DEFAULT_CONFIG, REPO_DIR, Config, ConfigError, load_config, run_key
from training.data import synthetic_root
from training.evaluation import Results, conditions_file, gt_folder, read_results
from training.pretrain import trained_config
from training.statistics import Draws, Estimate, difference, draw, row_mean, run_ap
from training.study import ABLATIONS, DEFAULT_STUDY, Study, StudyTable, load_study, row_info

MANIFEST = "manifest.json"
# What each scored split's files are called in a run directory (train.py's layout).
SPLIT_FOLDERS = {"val": "predictions/latest", "test": "predictions_test/latest"}


@dataclasses.dataclass(frozen=True)
class RowSeed:
    """One run of the study: a row (the first of the rows it equals), a seed, its resolved config and its key."""

    row: str
    seed: int
    config: Config
    key: str
    directory: Path


def main(argv: list[str] | None = None) -> int:
    """Stage 1 once, the missing row-seeds in parallel, then the statistics and the report."""
    args = parse_args(argv)
    args.command = shlex.join(["python", "ablate.py", *(sys.argv[1:] if argv is None else argv)])
    return run_guarded("ablate.py", lambda: study(args), (ConfigError, EvalInputError, PoseTrackFormatError))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (module docstring)."""
    parser = CommandParser(prog="ablate.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, default=DEFAULT_STUDY, help="the study file (rows, seeds, differences)")
    parser.add_argument("--rows", nargs="+", help="only the rows whose names start with one of these")
    parser.add_argument("--seeds", nargs="+", type=int, help="instead of the study's seeds (distinct)")
    parser.add_argument("--split", choices=sorted(SPLIT_FOLDERS), default="test", help="the split reported on")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="row-seeds trained at once")
    parser.add_argument("--base", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--out", type=Path, default=Path("runs/ablate"))
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="train.py overrides, every row")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs and runs ablate.py did not write")
    return parser.parse_args(argv)


def study(args: argparse.Namespace) -> int:
    """The whole command: plan, stage 1, the row-seeds, the statistics, the report."""
    whole = load_study(args.study)
    plan = select(whole, args.rows, args.seeds)
    policy = OutputPolicy.for_inputs([args.study, args.base, ABLATIONS], overwrite=args.overwrite)
    for name in ("results.md", "study.json"):
        policy.target(args.out / name, ours=lambda path: _ours(args.out, path))
    policy.target(args.out / MANIFEST, ours=lambda path: _manifest(args.out) is not None)
    runs = resolve(plan, whole.rows, args)
    if not (args.split == "val" or runs[0].config.data.test_split):
        raise ConfigError("--split test: data.test_split is null (set it, or report on --split val)")
    stage1 = [sys.executable, str(REPO_DIR / "train.py"), "--pretrain-only", "--base", str(args.base)]
    stage1 += ["--config", str(ABLATIONS / f"{runs[0].row}.yaml"), *(["--set", *args.set] if args.set else [])]
    if subprocess.run(stage1, env=os.environ | {"OMP_NUM_THREADS": "1"}, check=False).returncode != 0:
        sys.stderr.write("ablate.py: error: stage 1 failed\n")
        return 1

    todo = [run for run in _distinct(runs) if not reusable(run, args)]
    _say(f"{len(_distinct(runs))} distinct row-seed(s), {len(todo)} to train, {args.jobs} at a time")
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        cpu = sum(pool.map(lambda run: train(run, args), todo))
    if todo:
        _say(f"trained {len(todo)} row-seed(s) in {time.monotonic() - start:.0f} s wall, {cpu:.0f} s CPU")
    unfinished = [run for run in _distinct(runs) if read_results(run.directory) is None]
    if unfinished:
        sys.stderr.write(f"ablate.py: {len(unfinished)} row-seed(s) did not finish (see their .log files)\n")
        return 1

    report = statistics(plan, runs, args.split)
    text = markdown(plan, report, args)
    atomic_write_text(args.out / "study.json", json.dumps(report, indent=1))
    atomic_write_text(args.out / "results.md", text)
    files = {name: file_sha256(args.out / name) for name in ("results.md", "study.json")}
    atomic_write_text(args.out / MANIFEST, json.dumps({"written_by": "ablate.py", "files": files}, indent=1))
    _say(f"\n{text}\nwritten to {args.out / 'results.md'} and {args.out / 'study.json'}")
    return 0


# ---------------------------------------------------------------------------------------------- the plan


def select(plan: Study, patterns: list[str] | None, seeds: list[int] | None) -> Study:
    """The study restricted to the rows whose names start with a pattern (and the differences among them)."""
    if seeds is not None and len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {' '.join(map(str, seeds))}: a seed is repeated (each seed is one run)")
    tables = plan.tables
    if patterns:
        tables = []
        for table in plan.tables:
            rows = [row for row in table.rows if any(row.startswith(p) for p in patterns)]
            kept = [pair for pair in table.differences if set(pair) <= set(rows)]
            tables += [StudyTable(name=table.name, rows=rows, differences=kept)] if rows else []
        if not tables:
            raise ConfigError(f"--rows {' '.join(patterns)}: no row of the study starts with that")
    return dataclasses.replace(plan, tables=tables, seeds=seeds if seeds is not None else plan.seeds)


def resolve(plan: Study, every_row: list[str], args: argparse.Namespace) -> list[RowSeed]:
    """Every row x seed, with the config train.py will train and its key.

    Rows with equal keys share one folder, the first of ``every_row`` (the whole study's rows) with that key,
    so ``--rows table5`` after ``--rows table4`` reuses Table 4 (c)'s runs for Table 5 (d).
    """
    runs = []
    for seed in plan.seeds:  # seed by seed, so that an interrupted study has whole seeds of every row
        keys = {row: run_key(trained_config(_config(row, seed, args))) for row in every_row}
        owners = {}
        for row, key in keys.items():
            owners.setdefault(key, row)
        for row in plan.rows:
            cfg = _config(row, seed, args)
            key = run_key(trained_config(cfg))
            runs.append(RowSeed(row, seed, cfg, key, args.out / owners.get(key, row) / f"seed{seed}"))
    return runs


def _config(row: str, seed: int, args: argparse.Namespace) -> Config:
    return load_config(ABLATIONS / f"{row}.yaml", [*args.set, f"run.seed={seed}"], base=args.base)


def _distinct(runs: list[RowSeed]) -> list[RowSeed]:
    return list({run.directory: run for run in reversed(runs)}.values())[::-1]


# ---------------------------------------------------------------------------------------------- training


def reusable(run: RowSeed, args: argparse.Namespace) -> bool:
    """Whether ``run.directory`` holds this very run, finished, its predictions scoring as recorded.

    Raises:
        OutputError: the folder holds another run (or something else), and ``--overwrite`` is off.
    """
    directory = run.directory
    if not directory.exists():
        return False
    results = read_results(directory)
    if results is None:
        if any(directory.iterdir()) and not (directory / "config.yaml").is_file() and not args.overwrite:
            raise OutputError(f"{directory}: holds files train.py did not write (--overwrite replaces them)")
        return False  # an interrupted run: trained again
    if results.run_key != run.key:
        if not args.overwrite:
            raise OutputError(f"{directory}: holds a run of other settings (key {results.run_key}, this study's "
                              f"is {run.key}); --overwrite retrains it, or choose another --out")  # fmt: skip
        return False
    recorded = _scored(results, args.split)
    if recorded is None:
        return False
    stats = _statistics(run, args.split)
    rescored = resampled_ap(stats, np.ones((1, len(stats.sequences)), dtype=np.int64))[0]
    if abs(rescored - recorded) > 1e-6:
        _say(f"{directory}: its predictions score {rescored:.4f}, not the {recorded:.4f} recorded; training it again")
        return False
    return True


def train(run: RowSeed, args: argparse.Namespace) -> float:
    """One row-seed in its own process, its log beside its folder; returns the CPU seconds it took."""
    directory = run.directory
    if directory.exists():  # an interrupted run, or (with --overwrite) another run: train.py starts afresh
        shutil.rmtree(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(REPO_DIR / "train.py"), "--config", str(ABLATIONS / f"{run.row}.yaml")]
    command += ["--base", str(args.base), "--set", f"run.seed={run.seed}", f"run.output_dir={directory}", *args.set]
    start = time.monotonic()
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    with open(directory.with_suffix(".log"), "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)  # the child's own CPU time, whatever else runs
    cpu = usage.ru_utime + usage.ru_stime
    took = f"{time.monotonic() - start:.0f} s wall, {cpu:.0f} s CPU"
    code = os.waitstatus_to_exitcode(status)
    _say(f"{run.row} seed {run.seed}: " + (f"done, {took}" if code == 0 else f"FAILED (exit {code}, see {log.name})"))
    return cpu


# ---------------------------------------------------------------------------------------------- statistics


def _scored(results: Results, split: str) -> float | None:
    scored = results.test if split == "test" else results.final
    return None if scored is None else scored.ap["Total"]


def _data_root(cfg: Config) -> Path:
    return Path(cfg.data.root) if cfg.data.root is not None else synthetic_root(cfg.data)


def _split_name(cfg: Config, split: str) -> str:
    return cfg.data.test_split if split == "test" else cfg.data.val_split


def _statistics(run: RowSeed, split: str):
    cfg = run.config
    gt = gt_folder(cfg, _data_root(cfg), _split_name(cfg, split))
    return sequence_statistics(gt, run.directory / SPLIT_FOLDERS[split], protocol=cfg.eval.protocol)


def statistics(plan: Study, runs: list[RowSeed], split: str) -> dict[str, Any]:
    """Every row's runs scored on ``split`` (overall and per condition), the means and the differences."""
    cfg = runs[0].config
    subsets_path = conditions_file(cfg, _data_root(cfg), _split_name(cfg, split))
    subsets = json.loads(subsets_path.read_text()) if subsets_path is not None else {}
    by_row: dict[str, list[RowSeed]] = {}
    for run in runs:
        by_row.setdefault(run.row, []).append(run)
    stats = {run.directory: _statistics(run, split) for run in _distinct(runs)}
    draws = draw(len(next(iter(stats.values())).sequences), len(plan.seeds), plan.resamples)
    measures = {"all": None, **subsets}
    aps = {directory: {name: run_ap(s, draws, ids) for name, ids in measures.items()} for directory, s in stats.items()}
    rows = {}
    for row, row_runs in by_row.items():
        info = row_info(row)
        heads = [(read_results(run.directory), run) for run in row_runs]
        rows[row] = {
            "table": info.table,
            "label": info.label,
            "paper": info.paper,
            "folder": str(row_runs[0].directory.parent),
            "key": row_runs[0].key,
            "runs": len(row_runs),
            "seeds": plan.seeds,
            "per_seed": [aps[run.directory]["all"].observed for run in row_runs],
            "heads_alone": _heads_alone([results for results, _ in heads], split),
            "mean": {name: _as_dict(_mean(aps, row_runs, name, draws, plan)) for name in measures},
        }
    differences = []
    for table in plan.tables:
        for reference, row in table.differences:
            estimates = {
                name: _as_dict(
                    difference(
                        [aps[r.directory][name] for r in by_row[row]],
                        [aps[r.directory][name] for r in by_row[reference]],
                        draws,
                        plan.confidence,
                    )
                )
                for name in measures
            }
            differences.append({"table": table.name, "reference": reference, "row": row, "difference": estimates})
    return {
        "split": split,
        "videos": len(draws.videos[0]),
        "resamples": plan.resamples,
        "confidence": plan.confidence,
        "measures": list(measures),
        "rows": rows,
        "differences": differences,
    }


def _mean(aps: dict, runs: list[RowSeed], name: str, draws: Draws, plan: Study) -> Estimate:
    return row_mean([aps[run.directory][name] for run in runs], draws, plan.confidence)


def _heads_alone(results: list[Results | None], split: str) -> dict[str, float]:
    """The mean over seeds of H_m and H_k scored alone (those the model has)."""
    scored = [r.test if split == "test" else r.final for r in results if r is not None]
    heads = {head for s in scored if s is not None for head in s.head_ap}
    return {head: float(np.mean([s.head_ap[head] for s in scored if s is not None])) for head in sorted(heads)}


def _as_dict(estimate: Estimate) -> dict[str, float]:
    return dataclasses.asdict(estimate)


# ---------------------------------------------------------------------------------------------- the report


def markdown(plan: Study, report: dict[str, Any], args: argparse.Namespace) -> str:
    """Per table: the rows (mean [interval] overall and per condition) and the paired differences."""
    measures = report["measures"]
    seeds = " ".join(map(str, plan.seeds))
    lines = [
        f"AP of H (poseval mAP) on the {report['split']} split ({report['videos']} videos), mean over seeds {seeds}; "
        f"[{report['confidence']:.0%} interval] from {report['resamples']} bootstrap resamples of the seeds and the "
        "videos; per condition, the AP over the persons whose key frame is in it.",
        "",
    ]
    header = " | ".join(["all", *measures[1:]])
    for table in plan.tables:
        lines += [f"### {table.name}", "", f"| row | config | paper | {header} | H_m alone | H_k alone | runs |"]
        lines.append("|" + "---|" * (len(measures) + 6))
        for row in table.rows:
            entry = report["rows"][row]
            paper = "-" if entry["paper"] is None else f"{entry['paper']:.1f}"
            cells = [_cell(entry["mean"][name]) for name in measures]
            alone = [f"{entry['heads_alone'][h]:.1f}" if h in entry["heads_alone"] else "-" for h in ("H_m", "H_k")]
            lines.append(f"| {entry['label']} | `{row}` | {paper} | {' | '.join(cells)} | {' | '.join(alone)} "
                         f"| {entry['runs']} |")  # fmt: skip
        pairs = [d for d in report["differences"] if d["table"] == table.name]
        if pairs:
            lines += ["", f"| difference | paper | {header} |", "|" + "---|" * (len(measures) + 2)]
            for pair in pairs:
                ref, row = report["rows"][pair["reference"]], report["rows"][pair["row"]]
                paper = "-" if None in (ref["paper"], row["paper"]) else f"{row['paper'] - ref['paper']:+.1f}"
                cells = [_cell(pair["difference"][name], signed=True) for name in measures]
                lines.append(f"| {row['label']} - {ref['label']} | {paper} | {' | '.join(cells)} |")
        lines.append("")
    lines.append(f"Command: `uv run {args.command}`")
    return "\n".join(lines) + "\n"


def _cell(estimate: dict[str, float], signed: bool = False) -> str:
    value, low, high = estimate["value"], estimate["low"], estimate["high"]
    if np.isnan(value):
        return "-"
    sign = "+" if signed else ""
    return f"{value:{sign}.1f} [{low:{sign}.1f}, {high:{sign}.1f}]"


def _manifest(out: Path) -> dict[str, str] | None:
    """The files ablate.py wrote into ``out`` with their SHA-256, from its manifest; None without one."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    ours = isinstance(manifest, dict) and manifest.get("written_by") == "ablate.py"
    return manifest.get("files") if ours and isinstance(manifest.get("files"), dict) else None


def _ours(out: Path, path: Path) -> bool:
    """Whether ``path`` is a file ablate.py wrote into ``out`` (its manifest records it, unchanged)."""
    files = _manifest(out)
    return files is not None and files.get(path.name) == file_sha256(path)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
