"""benchmarks/gpu_profile.py runs every path (trainings, fitnesses, profiler) in smoke mode on
the CPU, so that the prepared GPU script does not fail on the machine it was lent for."""

import subprocess
import sys
from pathlib import Path

from tests._runs import cli_env

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_profile_runs_in_smoke_mode_on_the_cpu():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_profile.py"), "--device", "cpu", "--smoke"],
        capture_output=True, text=True, env=cli_env(), timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for row in ("lenet5 FP32 base", "lenet5 float supernet", "lenet5 quant supernet",
                "lenet5 widen", "lenet5 supernet", "lenet5 quant-supernet"):  # fmt: skip
        assert f"| {row}" in out
    assert "commit " in out and "top operators" in out
