"""The latency helpers return sane numbers and the benchmark writes valid JSON (no timing asserts)."""

import json
import math
import runpy
import sys
from pathlib import Path

import pytest
import torch

from groot_kit import bench

ROOT = Path(__file__).resolve().parents[1]


def _run_benchmark(monkeypatch, script: str, *argv: str) -> int:
    """Run benchmarks/<script> as `python benchmarks/<script> ARGV` would; -> its exit code. The
    scripts set torch's thread count, which is restored for the tests after."""
    monkeypatch.setattr(sys, "argv", [script, *argv])
    threads = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit) as e:
            runpy.run_path(str(ROOT / "benchmarks" / script), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    return e.value.code


def test_summarize_ms_percentiles():
    s = bench.summarize_ms([float(i) for i in range(1, 11)])
    assert s["median_ms"] == 5.5 and s["p90_ms"] == 9.0 and s["min_ms"] == 1.0 and s["max_ms"] == 10.0
    assert s["repeats"] == 10
    with pytest.raises(ValueError):
        bench.time_callable(lambda: None, repeats=0)


def test_measure_latency_tiny_positive(tmp_path):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        policy = bench.build_policy("tiny")
        r = bench.measure_latency(policy, num_steps=4, repeats=2, warmup=1)
    finally:
        torch.set_num_threads(threads)
    for key in ("system2", "system2_cached_tokens", "tokenize", "system1_chunk", "euler_step"):
        t = r[key]
        assert t["repeats"] == 2
        assert 0 < t["min_ms"] <= t["median_ms"] <= t["p90_ms"] <= t["max_ms"] < 60_000, (key, t)
        assert math.isfinite(t["mean_ms"])
    assert r["preset"] == "tiny" and r["num_steps"] == 4 and r["threads"] == 1
    assert r["parameters"]["total"] == policy.num_parameters()["total"] > 0
    assert r["flops"]["system1_flops_per_chunk"] > 0 and r["flops"]["system2_flops"] > 0
    checks = bench.check_goals(r)
    assert [c["name"] for c in checks] == ["System 1 chunk", "System 2"]
    assert all(isinstance(c["passed"], bool) for c in checks)
    assert "tiny" in bench.format_table([r])
    out = bench.write_json({"results": [r]}, tmp_path / "sub" / "r.json")
    assert json.loads(out.read_text())["results"][0]["preset"] == "tiny"


def test_benchmark_script_writes_json(tmp_path, monkeypatch, capsys):
    out = tmp_path / "latency.json"
    assert _run_benchmark(monkeypatch, "latency.py", "--presets", "tiny", "--repeats", "2", "--warmup", "1",
                          "--out", str(out)) == 0
    data = json.loads(out.read_text())
    assert [r["preset"] for r in data["results"]] == ["tiny"]
    assert data["results"][0]["system1_chunk"]["median_ms"] > 0
    assert {g["name"] for g in data["goals_tiny"]} == {"System 1 chunk", "System 2"}
    printed = capsys.readouterr().out
    assert ("PASS" in printed or "FAIL" in printed) and "tiny" in printed


def test_system1_benchmark_compares_the_three_chunk_paths(tmp_path, monkeypatch, capsys):
    """benchmarks/system1.py at tiny size: the reference, planned and VL-context-reused chunks agree
    (max |diff| stored), every time is positive, the train step's two paths give the same loss."""
    out = tmp_path / "system1.json"
    assert _run_benchmark(monkeypatch, "system1.py", "--presets", "tiny", "--vl-lens", "8", "40", "--threads", "1",
                          "--repeats", "2", "--out", str(out)) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["preset"], r["L"]) for r in rows] == [("tiny", 8), ("tiny", 40)]
    for r in rows:
        assert r["chunk_max_abs_diff"] < 1e-5 and r["train_loss_abs_diff"] < 1e-6
        assert min(r["chunk_ref_ms"], r["chunk_opt_ms"], r["chunk_vl_reused_ms"], r["train_opt_ms"]) > 0
        # the train step = forward/backward + the AdamW step, split per call
        assert 0 < r["adamw_opt_ms"] < r["train_opt_ms"] and 0 < r["adamw_ref_ms"] < r["train_ref_ms"]
    table = bench.format_chunk_paths(rows)
    assert len(table.splitlines()) == 4 and "tiny" in table
    table = bench.format_train_paths(rows)
    assert len(table.splitlines()) == 4 and f"{rows[1]['adamw_opt_ms']:.1f}" in table
    assert "tiny" in capsys.readouterr().out
