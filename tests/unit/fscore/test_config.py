import subprocess
import sys

import pytest

from fscore.config import load_config
from fscore.course import CourseBuilder
from fscore.errors import ConfigError


def test_example_config_loads_and_overrides_apply(example_config):
    config = load_config(example_config, ["data.alpha=0.1", "rounds=5", "trainer.optimizer=adam"])
    assert (config.data.alpha, config.rounds, config.trainer.optimizer) == (0.1, 5, "adam")


def test_config_hash_is_stable_and_sensitive(example_config):
    assert load_config(example_config).config_hash() == load_config(example_config).config_hash()
    assert load_config(example_config).config_hash() != load_config(example_config, ["seed=1"]).config_hash()


@pytest.mark.parametrize(("overrides", "expected"), [
    (["data.alpah=0.5"], "data.alpah: unknown key (misspelled?)"),
    (["participants=-3"], "participants: Input should be greater than or equal to 1 (got -3)"),
    (["data.alpha=0"], "data.alpha: Input should be greater than 0 (got 0)"),
    (["sample_size=50"], "sample_size (50) exceeds participants (10)"),
    (["aggregator.name=fedsgd"], "unknown aggregator 'fedsgd'"),
    (["rounds"], "must look like key=value"),
])
def test_invalid_config_names_the_key(example_config, overrides, expected):
    with pytest.raises(ConfigError) as err:
        CourseBuilder(load_config(example_config, overrides))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*nope.yaml' not found"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_syntax_error_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rounds: 3\ndata: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML at line"):
        load_config(bad)


@pytest.mark.parametrize("args", [
    ["--set", "data.alpah=0.5"],
    ["--set", "participants=-1"],
])
def test_cli_reports_bad_config_in_one_line_without_traceback(example_config, args):
    proc = subprocess.run([sys.executable, "-m", "fscore.cli", "run", str(example_config), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fscope: config error:")


def test_cli_reports_missing_file_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fscore.cli", "run", str(tmp_path / "x.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not found" in proc.stderr


def _cli_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fscore.cli", "run", *args], capture_output=True, text=True,
                          timeout=120)


def _one_config_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fscope: config error:"), proc.stderr
    return lines[0]


def test_binary_config_file_is_one_line_naming_it(tmp_path):
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    line = _one_config_error_line(_cli_run(str(png)))
    assert f"{png}: not a text file" in line


def test_yaml_with_nul_byte_is_one_line_naming_the_line(tmp_path):
    bad = tmp_path / "nul.yaml"
    bad.write_bytes(b"rounds: 3\n\x00seed: 1\n")
    line = _one_config_error_line(_cli_run(str(bad)))
    assert "invalid YAML at line 2" in line and "U+0000" in line


def test_too_many_participants_names_the_key_and_the_limit(example_config):
    line = _one_config_error_line(_cli_run(str(example_config), "--set", "participants=5000"))
    assert line.startswith("fscope: config error: participants: 5000 participants")
    assert "data.min_samples_per_participant=4" in line and "at most 359 participants" in line
