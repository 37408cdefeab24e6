import subprocess
import sys


def test_imports_and_scores_with_torch_blocked(posetrack18_sample):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import posetrack_eval\n"
        f"r = posetrack_eval.evaluate({str(posetrack18_sample / 'annotations' / 'val')!r}, [])\n"
        "print(r.ap['Total'], 'torch' in sys.modules and sys.modules['torch'] is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0.0", "False"]


def test_public_names():
    import posetrack_eval

    assert callable(posetrack_eval.evaluate)
    assert callable(posetrack_eval.format_table)
    assert issubclass(posetrack_eval.EvalInputError, ValueError)
    assert len(posetrack_eval.SCORED_JOINT_NAMES) == 15


def test_each_public_name_is_loaded_from_the_module_that_defines_it():
    import importlib

    import posetrack_eval

    for name, module in posetrack_eval._EXPORTS.items():
        value = getattr(importlib.import_module(module), name)
        if callable(value):
            assert value.__module__ == module, name
