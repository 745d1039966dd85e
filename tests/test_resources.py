"""Memory is estimated before it is allocated: a clear error with the estimate."""

from __future__ import annotations

import numpy as np
import pytest

from analogsim.experiments import cli
from analogsim.experiments.sweep import loads_spec
from analogsim.hardware.array import CrossbarArray
from analogsim.hardware.presets import get_preset
from analogsim.resources import InsufficientMemory, available_bytes, check_memory, format_bytes


def test_budget_and_messages(monkeypatch) -> None:
    assert available_bytes() is None or available_bytes() > 0
    monkeypatch.setenv("ANALOGSIM_MEMORY_LIMIT", "1e6")
    assert available_bytes() == 1_000_000
    check_memory(999_999, "small")
    with pytest.raises(InsufficientMemory, match=r"^big needs about 1.91 MiB but this process "
                                                 r"can allocate about 977 KiB"):
        check_memory(2_000_000, "big")
    assert isinstance(InsufficientMemory("x"), ValueError)  # the CLI's usage errors
    monkeypatch.setenv("ANALOGSIM_MEMORY_LIMIT", "lots")
    with pytest.raises(ValueError, match="ANALOGSIM_MEMORY_LIMIT = 'lots' is invalid"):
        available_bytes()
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(12) == "12 B"


def test_an_array_too_large_is_refused_before_allocation(monkeypatch) -> None:
    monkeypatch.setenv("ANALOGSIM_MEMORY_LIMIT", "1e8")
    with pytest.raises(MemoryError,
                       match=r"CrossbarArray\(n_in=16000, n_out=16000\) needs about 15.3 GiB"):
        CrossbarArray(16000, 16000, get_preset("pcm"), seed=0)
    CrossbarArray(100, 100, get_preset("pcm"), seed=0)


def test_a_network_too_large_is_refused_at_once(monkeypatch, capsys) -> None:
    monkeypatch.setenv("ANALOGSIM_MEMORY_LIMIT", "1e9")
    argv = ["train", "--epochs", "1", "--set", "model.sizes=[64,1000000,1000000,10]"]
    assert cli.main(argv) == 2
    assert "sizes [64, 1000000, 1000000, 10] (1000074000000 weights) needs about 58.2 TiB" in \
        capsys.readouterr().err


def test_a_spec_that_expands_too_far_is_refused_before_expanding() -> None:
    with pytest.raises(ValueError, match="expands to 1000000000 points; allowed: at most "
                                         "1000000 per spec"):
        loads_spec('name = "x"\n[random]\nn = 1000000000\nlr = { uniform = [0.01, 0.1] }\n')


def test_a_checkpoint_member_larger_than_its_array_is_refused_unread(tmp_path) -> None:
    from analogsim.experiments import checkpoint as ck
    from analogsim.experiments.runner import TrainConfig, build_run
    from analogsim.layers.network import ModelConfig

    hw, model, cfg = get_preset("ideal"), ModelConfig(sizes=(64, 8, 10)), TrainConfig()
    path = ck.save(tmp_path / "c.npz", build_run(hw, model, cfg, 64, 10),
                   {"config": {"hardware": hw.to_dict(), "model": model.to_dict(),
                               "train": cfg.to_dict()}, "epoch": 0, "progress": None})
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["net.layer0.b"] = np.zeros(50_000_000, np.uint8)  # 50 MB inflated, ~50 kB stored
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, **arrays)
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(ValueError, match=r"member 'net.layer0.b' declares 500001\d\d bytes; "
                                         r"allowed: at most 4\d\d\d for the rebuilt"):
        ck.load(bomb, hw, model, cfg)
