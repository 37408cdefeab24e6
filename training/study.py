"""The ablation study ``ablate.py`` runs: its tables, rows, seeds and the paired differences it reports.

``configs/study.yaml`` holds it as data. A row is a file of ``configs/ablations`` (its first line names the
paper's table, row and number); a difference ``[reference, row]`` is row minus reference, paired by seed and by
test video (``training.statistics``).
"""

import dataclasses
import re
from pathlib import Path

import yaml

from training.config import REPO_DIR, ConfigError
from vremd_models.schema import FieldError, build, check_types, require

__all__ = ["ABLATIONS", "DEFAULT_STUDY", "RowInfo", "Study", "StudyTable", "load_study", "row_info"]

ABLATIONS = REPO_DIR / "configs" / "ablations"
DEFAULT_STUDY = REPO_DIR / "configs" / "study.yaml"
# "# Table 4 (a) (85.3 mAP): ..." or, for a row the paper does not have, "# Table 5 (a') (variant): ..."
_FIRST_LINE = re.compile(r"^# (Table \d)[, ]+(.*?) \((?:([\d.]+) mAP|variant)\)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class StudyTable:
    """One ablation table of the paper.

    Args:
        name: The paper's name for it (``"Table 4"``).
        rows: Its rows, ``configs/ablations`` file names without ``.yaml``, in the order the table lists them.
        differences: ``[reference, row]`` pairs, each reported as row minus reference.
    """

    name: str
    rows: list[str]
    differences: list[tuple[str, str]]

    def __post_init__(self) -> None:
        check_types(self)
        for k, pair in enumerate(self.differences):
            require(set(pair) <= set(self.rows), f"differences[{k}]", list(pair), f"two of the rows {self.rows}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Study:
    """Rows x seeds, all on the same stage-1 backbone and data, and how their statistics are drawn.

    Args:
        tables: The tables, in the order they are reported.
        seeds: ``run.seed`` of every row's runs (distinct).
        resamples: Bootstrap resamples of the seeds and test videos.
        confidence: Coverage of the intervals.
    """

    tables: list[StudyTable]
    seeds: list[int]
    resamples: int = 2000
    confidence: float = 0.95

    def __post_init__(self) -> None:
        check_types(self)
        require(len(self.seeds) == len(set(self.seeds)) > 0, "seeds", self.seeds, "distinct seeds, at least one")
        require(self.resamples >= 100, "resamples", self.resamples, "at least 100")
        require(0 < self.confidence < 1, "confidence", self.confidence, "in (0, 1)")

    @property
    def rows(self) -> list[str]:
        """Every row of every table, each once, in table order."""
        return list(dict.fromkeys(row for table in self.tables for row in table.rows))


def load_study(path: Path = DEFAULT_STUDY) -> Study:
    """Read a study file; every row must be an ablation file.

    Raises:
        ConfigError: unreadable file, wrong type or value, or a row without its file (names the file and key).
    """
    try:
        study = build(Study, yaml.safe_load(path.read_text()))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the study: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    except (FieldError, TypeError) as error:
        raise ConfigError(f"{path}: {error}") from None
    for row in study.rows:
        if not (ABLATIONS / f"{row}.yaml").is_file():
            raise ConfigError(f"{path}: row {row}: no file {ABLATIONS / f'{row}.yaml'}")
    return study


@dataclasses.dataclass(frozen=True)
class RowInfo:
    """What an ablation file's first line says: the paper's table, the row's label and the paper's mAP."""

    table: str
    label: str
    paper: float | None  # None: a variant the paper does not have


def row_info(row: str) -> RowInfo:
    """The first line of ``configs/ablations/<row>.yaml``.

    Raises:
        ConfigError: the first line does not read ``# Table N (x) (NN.N mAP): ...`` or ``... (variant): ...``.
    """
    path = ABLATIONS / f"{row}.yaml"
    match = _FIRST_LINE.match(path.read_text().split("\n", 1)[0])
    if match is None:
        raise ConfigError(f"{path}: first line must read '# Table N (x) (NN.N mAP): ...' or '... (variant): ...'")
    return RowInfo(match[1], match[2], float(match[3]) if match[3] else None)
