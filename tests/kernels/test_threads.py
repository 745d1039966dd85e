"""Every random kernel gives bit-identical results at 1 and 2 numba threads, and its serial
build (used for small calls) gives the same bits as the parallel one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from analogsim.kernels import (adc_read, dac_encode, make_key, normal, pulse_update_expected,
                                   pulse_update_stochastic, uniform)

    import analogsim.kernels._numba as nb

    out_dir = sys.argv[1]
    # Small calls run the serial build of each driver; force the parallel ones here.
    nb.SERIAL_WORK = 0
    key = make_key(2024, 3)
    rng = np.random.default_rng(0)
    res = {"uniform": uniform(key, 1, 10_001), "normal": normal(key, 2, 10_001)}

    x = rng.standard_normal((33, 70)).astype(np.float32)
    xq, scale, sq, _ = dac_encode(x, bits=6, input_range=1.0, maxabs=True,
                                  col_starts=np.array([0, 64, 70], dtype=np.int64))
    w = (rng.standard_normal((45, 70)) * 0.1).astype(np.float32)
    out = np.zeros((33, 45), dtype=np.float32)
    for k, (c0, c1) in enumerate([(0, 64), (64, 70)]):
        y = np.ascontiguousarray(xq[:, c0:c1] @ w[:, c0:c1].T)
        adc_read(y, out, sqnorm_block=np.ascontiguousarray(sq[:, k]), scale=scale,
                 read_std=0.05, out_std=0.1, bits=6, bounds=np.full(3, 1.5, np.float32),
                 row_tile=16, key=key, counter=10 + k)
    res["adc"] = out

    shape = (40, 70)
    dev = dict(alpha_up=rng.uniform(0.001, 0.02, shape).astype(np.float32),
               alpha_down=rng.uniform(0.001, 0.02, shape).astype(np.float32),
               frozen_p=(rng.random(shape) < 0.05).astype(np.uint8),
               frozen_m=(rng.random(shape) < 0.05).astype(np.uint8))
    for soft in (True, False):
        gp = rng.uniform(0.1, 0.9, shape).astype(np.float32)
        gm = rng.uniform(0.1, 0.9, shape).astype(np.float32)
        dw = (rng.standard_normal(shape) * 0.01).astype(np.float32)
        for c in range(3):
            pulse_update_expected(gp, gm, dw, dw_min=0.004, soft=soft, ctoc=0.3 * c,
                                  max_pulses=20, key=key, counter=c, **dev)
        xs = rng.standard_normal((16, 70)).astype(np.float32)
        ds = rng.standard_normal((16, 40)).astype(np.float32)
        for c in range(3):
            pulse_update_stochastic(gp, gm, xs, ds, 0.05, bl=31, dw_min=0.002,
                                    update_management=bool(c % 2), soft=soft, ctoc=0.3 * c,
                                    key=key, counter=c, **dev)
        res[f"gp_{soft}"], res[f"gm_{soft}"] = gp, gm
    for name, arr in res.items():
        np.save(f"{out_dir}/{name}.npy", arr)
""")


def run(tmp_path, threads):
    out = tmp_path / f"t{threads}"
    out.mkdir()
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    subprocess.run([sys.executable, "-c", SCRIPT, str(out)], env=env, check=True, timeout=300)
    return {p.stem: np.load(p) for p in sorted(out.glob("*.npy"))}


def test_random_kernels_are_thread_count_independent(tmp_path):
    one, two = run(tmp_path, 1), run(tmp_path, 2)
    assert sorted(one) == sorted(two) and len(one) == 7
    for name in one:
        assert one[name].tobytes() == two[name].tobytes(), name


def test_serial_and_parallel_builds_agree(tmp_path):
    par = run(tmp_path, 2)
    out = tmp_path / "serial"
    out.mkdir()
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    script = SCRIPT.replace("nb.SERIAL_WORK = 0", "nb.SERIAL_WORK = 1 << 62")
    subprocess.run([sys.executable, "-c", script, str(out)], env=env, check=True, timeout=300)
    ser = {p.stem: np.load(p) for p in sorted(out.glob("*.npy"))}
    assert sorted(ser) == sorted(par)
    for name in par:
        assert par[name].tobytes() == ser[name].tobytes(), name
