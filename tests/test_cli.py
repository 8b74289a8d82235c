"""The real command, in a subprocess for the search, in-process for the usage errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mogaqnn.cli import main
from mogaqnn.config import SearchConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--population", "4", "--generations", "2", "--seed", "0",
    "--pretrain-epochs", "0.5", "--search-epochs", "0.5", "--final-epochs", "0.25",
    "--search-train-samples", "300", "--search-val-samples", "200",
    "--weight-bits", "2,4", "--act-bits", "4,8", "--expansion-ratios", "1.0,1.5",
    "--no-progress",
]  # fmt: skip
RESULT_FIELDS = {
    "mogaqnn_version", "seed", "config", "dataset", "model", "fp32", "chosen", "search", "timing",
    "fp32_distilled", "claim", "final_diverged", "environment",
}  # fmt: skip
CHOSEN_FIELDS = {
    "trial", "generation", "genome_key", "epochs", "search_val_accuracy", "val_accuracy",
    "test_accuracy", "size_bits", "size_kib", "size_breakdown_bits", "compression_ratio",
    "mean_weight_bits", "parameter_ratio", "layers", "groups",
}  # fmt: skip


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mogaqnn", *args], capture_output=True, text=True, env=env,
        timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    proc = run_cli("search", "--model", "lenet5", "--dataset", "mnist5k", "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_tiny_search_writes_every_result_field(tiny_run):
    out, proc = tiny_run
    for name in ("config.json", "study.journal", "base.pt", "final.pt", "result.json",
                 "pareto.csv"):  # fmt: skip
        assert (out / name).is_file(), name
    result = json.loads((out / "result.json").read_text())
    assert RESULT_FIELDS <= set(result)
    assert CHOSEN_FIELDS <= set(result["chosen"])
    env = result["environment"]  # what ran it: a result depends on the CPU and threads
    assert env["torch"] == torch.__version__ and env["threads"] == 1
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["device"] == "cpu x1" and env["commit"]  # this checkout's commit
    chosen, fp32 = result["chosen"], result["fp32"]
    assert chosen["epochs"] == fp32["epochs"] == 0.5 + 0.25  # same total budget
    assert 0.0 <= chosen["test_accuracy"] <= 1.0
    assert chosen["compression_ratio"] == pytest.approx(fp32["size_bits"] / chosen["size_bits"])
    assert len(chosen["layers"]) == 5 and len(chosen["groups"]) == 4
    assert "FP32 baseline" in proc.stdout and "MOGAQNN (chosen, trial" in proc.stdout


def test_tiny_search_trains_each_genome_once(tiny_run):
    out, _ = tiny_run
    result = json.loads((out / "result.json").read_text())
    s = result["search"]
    assert s["evaluations"] == 4 * 2
    trained = (out / "evaluations.log").read_text().splitlines()
    assert len(trained) == s["trained"] == s["evaluations"] - s["cache_hits"]
    keys = [json.loads(line)["genome"] for line in trained]
    assert len(keys) == len(set(keys))  # an identical genome is never trained twice
    rows = (out / "pareto.csv").read_text().splitlines()
    assert len(rows) == 1 + 8


def test_same_seed_gives_the_same_result(tiny_run, tmp_path):
    out, _ = tiny_run
    proc = run_cli("search", "--out", str(tmp_path / "again"), *TINY)
    assert proc.returncode == 0, proc.stderr
    a = json.loads((out / "result.json").read_text())
    b = json.loads((tmp_path / "again" / "result.json").read_text())
    for r in (a, b):
        r.pop("timing")
        r["config"].pop("out")
        for c in r["final_candidates"]:
            c.pop("train_seconds")
    assert a == b


def test_finished_run_directory_is_reported_not_rerun(tiny_run):
    out, _ = tiny_run
    before = (out / "result.json").read_text()
    proc = run_cli("search", "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr
    assert (out / "result.json").read_text() == before


def test_random_sampler_evaluates_the_same_budget(tmp_path):
    out = tmp_path / "random"
    proc = run_cli("search", "--sampler", "random", "--out", str(out), *TINY,
                   "--uniform-qat-bits", "")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["sampler"] == "random"
    s = result["search"]
    assert s["evaluations"] == 4 * 2  # population x generations, as NSGA-II gets
    # nothing evolves: the choice is made from every completed evaluation
    assert len(s["last_population"]) == s["evaluations"]
    assert set(s["front"]) <= set(s["last_population"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nosuchnet"], "unknown model 'nosuchnet'"),
        (["--dataset", "nosuchdata"], "unknown dataset 'nosuchdata'"),
        (["--weight-bits", "2,17"], "weight_bits holds 17, outside 1..16"),
        (["--act-bits", "0"], "act_bits holds 0, outside 2..16"),
        (["--act-bits", "1,4"], "act_bits holds 1, outside 2..16"),
        (["--weight-bits", ""], "weight_bits is an empty set"),
        (["--expansion-ratios", ","], "expansion_ratios is an empty set"),
        (["--population", "3"], "population is 3; it must be at least 4"),
        (["--generations", "0"], "generations is 0; it must be at least 1"),
        (["--sampler", "cmaes"], "sampler is 'cmaes'; choose one of nsga2, random"),
        (["--lsq-scale-lr", "0"], "lsq_scale_lr is 0.0; it must be a positive number"),
        (["--population", "many"], "population = 'many', which is not a valid int"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (out / "result.json").exists()


def test_bad_toml_files(tmp_path, capsys):
    missing = tmp_path / "missing.toml"
    assert main(["search", "--config", str(missing)]) == 2
    assert f"config file {missing} does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("population = = 4\n")
    assert main(["search", "--config", str(broken)]) == 2
    assert "is not valid TOML" in capsys.readouterr().err
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("populaton = 4\n")
    assert main(["search", "--config", str(unknown)]) == 2
    assert "unknown key 'populaton'" in capsys.readouterr().err
    bad_value = tmp_path / "bad.toml"
    bad_value.write_text("[search]\ngenerations = 0\n")
    assert main(["search", "--config", str(bad_value)]) == 2
    assert "generations is 0" in capsys.readouterr().err


def test_toml_values_and_flag_override(tmp_path, monkeypatch):
    from mogaqnn import cli

    cfg = tmp_path / "c.toml"
    cfg.write_text('population = 6\nweight_bits = [2, 4]\nmodel = "lenet5"\n')
    seen = {}

    def capture(args):
        seen["config"] = cli._config_from_args(args)
        return 0

    monkeypatch.setitem(cli.COMMANDS, "search", ("", capture))
    assert main(["search", "--config", str(cfg), "--population", "8"]) == 0
    assert seen["config"].population == 8 and seen["config"].weight_bits == (2, 4)


def test_directory_of_a_different_run_is_refused_and_untouched(tmp_path, capsys):
    out = tmp_path / "other"
    out.mkdir()
    stored = json.dumps(SearchConfig(seed=1, out=str(out)).to_dict())
    (out / "config.json").write_text(stored)
    (out / "base.pt").write_bytes(b"its training began")
    assert main(["search", "--out", str(out), "--seed", "2"]) == 2
    err = capsys.readouterr().err
    assert "holds a different run (it differs in seed)" in err
    assert (out / "config.json").read_text() == stored
    assert sorted(p.name for p in out.iterdir()) == ["base.pt", "config.json"]


def test_a_typo_writes_nothing_and_the_corrected_command_runs(tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["search", "--model", "nosuch", "--out", str(out)]) == 2
    assert "nosuch" in capsys.readouterr().err and not out.exists()
    assert main(["search", "--dataset", "nosuch", "--out", str(out)]) == 2
    assert not out.exists()
    # the config of a run that never started (what an older mogaqnn left) is replaced
    out.mkdir()
    (out / "config.json").write_text(json.dumps(SearchConfig(model="alexnet").to_dict()))
    cheaper = ["--generations", "1", "--final-epochs", "0.1", "--uniform-qat-bits", ""]
    assert main(["search", "--model", "lenet5", "--out", str(out), *TINY, *cheaper]) == 0
    assert SearchConfig.from_mapping(json.loads((out / "config.json").read_text())).model == (
        "lenet5"
    )


@pytest.mark.parametrize("bad", ["sqlite:///NO/such/dir/db.sqlite",
                                 "postgresql://nobody@127.0.0.1:1/none"])  # fmt: skip
def test_a_bad_storage_url_fails_before_anything_is_written_or_trained(bad, tmp_path, capsys):
    out = tmp_path / "x"
    bad = bad.replace("NO", str(tmp_path / "no"))
    assert main(["search", "--storage", bad, "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert "cannot open storage" in err and "pretraining" not in err
    assert repr(bad) in err  # the URL as typed, not as rewritten for the driver
    assert len(err.strip().splitlines()) == 1, err  # one sentence, not the driver's page
    assert not out.exists()


def test_non_empty_directory_without_a_run_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["search", "--out", str(tmp_path)]) == 2
    assert "holds no mogaqnn run" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_corrupt_base_checkpoint_is_one_clear_line(tiny_run, tmp_path, capsys):
    out, _ = tiny_run
    broken = tmp_path / "broken"
    broken.mkdir()
    config = json.loads((out / "config.json").read_text())
    config["out"] = str(broken)
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "base.pt").write_bytes(b"not a checkpoint")
    assert main(["resume", str(broken), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{broken / 'base.pt'} is corrupt or unreadable" in err
    assert len(err.strip().splitlines()) == 1
