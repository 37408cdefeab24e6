import subprocess
import sys

import pytest

from posetrack_eval import evaluate
from posetrack_eval.plot import save_pr_curves


def test_saves_a_png_of_the_curves(posetrack18_sample, sample_predictions, tmp_path):
    result = evaluate(posetrack18_sample / "annotations" / "val", sample_predictions, keep_curves=True)
    out = tmp_path / "pr.png"
    save_pr_curves(result, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_needs_curves(posetrack18_sample, sample_predictions, tmp_path):
    result = evaluate(posetrack18_sample / "annotations" / "val", sample_predictions)
    with pytest.raises(ValueError, match="keep_curves=True"):
        save_pr_curves(result, tmp_path / "pr.png")


def test_clear_error_without_matplotlib(tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.figure'] = None\n"
        "from posetrack_eval.result import EvalResult\n"
        "from posetrack_eval.plot import save_pr_curves\n"
        "r = EvalResult(protocol='poseval', num_frames=0, ap={}, ap_per_joint={}, ap_precision={}, ap_recall={},"
        " curves={})\n"
        "try:\n    save_pr_curves(r, 'x.png')\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "pip install 'posetrack-eval[plot]'" in out.stdout
