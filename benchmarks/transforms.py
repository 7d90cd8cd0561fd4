"""Benchmarks of jreg's optax transformations and of jreg.sweep.

1. Per-step cost of ``sgd + jreg.proximal(prox.l1)`` against ``add_decayed_weights + sgd`` on a
   model of about 10M parameters (both memory-bound; target ratio <= 1.10).
2. A 64-strength sweep of a small MLP (20 -> 32 -> 1, 256 samples, 500 full-batch steps of
   proximal SGD): ``jreg.sweep`` against a Python loop over jitted runs and the same loop in
   PyTorch (targets: >= 10x faster than PyTorch, at least as fast as the jitted loop).
3. The same sweep on a compute-bound MLP (512 -> 1024 -> 10, 4096 samples): the sweep's achieved
   FLOP/s as a fraction of this machine's measured matmul FLOP/s (target >= 70%), and its time
   against the loop of jitted runs (target: at least as fast).

Times are medians of several warm runs; the first call (compilation included) is reported
apart. Results go to ``benchmarks/results/transforms.{json,md}``
(``transforms_quick.{json,md}`` with ``--quick``). PyTorch is optional: without it the PyTorch
column is skipped.

    python benchmarks/transforms.py            # the full benchmark
    python benchmarks/transforms.py --quick    # small sizes, for CI (seconds)
"""

import argparse
import functools
import json
import os
import pathlib
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jreg

try:
    import torch
except ImportError:
    torch = None

RESULTS = pathlib.Path(__file__).parent / "results"
LEARNING_RATE = 0.05
SIZES = {
    "full": {
        "width": 1024,  # 9 * width**2 parameters: 9.4M
        "steps": 20,
        "n_strengths": 64,
        "sweep_steps": 500,
        "n_samples": 4096,
        "big_strengths": 8,
        "big_steps": 5,
        "matmul_n": 4096,
    },
    "quick": {
        "width": 128,
        "steps": 5,
        "n_strengths": 8,
        "sweep_steps": 50,
        "n_samples": 256,
        "big_strengths": 2,
        "big_steps": 2,
        "matmul_n": 512,
    },
}


def _timed(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def _measure(fns: dict, repeats: int) -> dict:
    """First call and median of ``repeats`` warm calls of each function, interleaved."""
    first = {name: _timed(fn) for name, fn in fns.items()}
    warm = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            warm[name].append(_timed(fn))
    return {
        name: {"first_call_s": first[name], "median_s": statistics.median(warm[name])}
        for name in fns
    }


# --------------------------------------------------------------------------------------------
# 1. Per-step cost on a ~10M-parameter model.


def bench_step_cost(width: int, steps: int, repeats: int) -> dict:
    shapes = {
        "w1": (width, 4 * width),
        "b1": (4 * width,),
        "w2": (4 * width, width),
        "b2": (width,),
        "w3": (width, width),
    }
    keys = dict(zip(shapes, jax.random.split(jax.random.key(0), len(shapes)), strict=True))
    grads = {name: jax.random.normal(keys[name], shape) for name, shape in shapes.items()}
    n_params = sum(int(np.prod(shape)) for shape in shapes.values())
    optimizers = {
        "sgd + proximal(l1)": optax.chain(
            optax.sgd(LEARNING_RATE), jreg.proximal(jreg.prox.l1, 1e-4, LEARNING_RATE)
        ),
        "add_decayed_weights + sgd": optax.chain(
            optax.add_decayed_weights(1e-4), optax.sgd(LEARNING_RATE)
        ),
    }

    def runner(tx):
        @functools.partial(jax.jit, donate_argnums=(0, 1))
        def step(params, state, grads):
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        params = jax.tree.map(jnp.copy, grads)
        carry = [params, tx.init(params)]

        def run():
            for _ in range(steps):
                carry[:] = step(*carry, grads)
            return carry

        return run

    times = _measure({name: runner(tx) for name, tx in optimizers.items()}, repeats)
    for t in times.values():
        t["per_step_ms"] = 1e3 * t["median_s"] / steps
    prox_ms, decay_ms = (t["per_step_ms"] for t in times.values())
    return {"n_params": n_params, "steps": steps, "times": times, "ratio": prox_ms / decay_ms}


# --------------------------------------------------------------------------------------------
# 2. and 3. Sweeps of MLP trainings.


def _mlp_init(sizes, seed=0):
    rng = np.random.default_rng(seed)
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        params[f"w{i}"] = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        params[f"b{i}"] = np.zeros(n_out, np.float32)
    return params


def _mlp(params, x):
    n_layers = len(params) // 2
    for i in range(n_layers):
        x = x @ params[f"w{i}"] + params[f"b{i}"]
        if i < n_layers - 1:
            x = jax.nn.relu(x)
    return x


def _make_train(X, y, init, steps, loss_name):
    """A full training run of proximal SGD (L1) at one strength, as a function of it."""
    X, y, init = jnp.asarray(X), jnp.asarray(y), jax.tree.map(jnp.asarray, init)

    def loss(params):
        out = _mlp(params, X)
        if loss_name == "squared":
            return 0.5 * jnp.mean((out[:, 0] - y) ** 2)
        return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()

    def train(strength):
        tx = optax.chain(
            optax.sgd(LEARNING_RATE), jreg.proximal(jreg.prox.l1, strength, LEARNING_RATE)
        )

        def step(carry, _):
            params, state = carry
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            return (optax.apply_updates(params, updates), state), None

        return jax.lax.scan(step, (init, tx.init(init)), length=steps)[0][0]

    return train


def _torch_loop(X, y, init, steps, strengths):
    """The same trainings in PyTorch, one strength after another (manual L1 prox).

    PyTorch runs on one intra-op thread, its fastest setting for these tiny matrices (more
    threads spin and wait on them).
    """
    torch.set_num_threads(1)
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    results = []
    for strength in strengths:
        params = {name: torch.tensor(value, requires_grad=True) for name, value in init.items()}
        threshold = LEARNING_RATE * float(strength)
        for _ in range(steps):
            h = torch.relu(X @ params["w0"] + params["b0"])
            loss = 0.5 * torch.mean(((h @ params["w1"] + params["b1"])[:, 0] - y) ** 2)
            grads = torch.autograd.grad(loss, list(params.values()))
            with torch.no_grad():
                for p, g in zip(params.values(), grads, strict=True):
                    p -= LEARNING_RATE * g
                    p.copy_(torch.sign(p) * torch.clamp(p.abs() - threshold, min=0))
        results.append({name: p.detach().numpy() for name, p in params.items()})
    return results


def bench_small_sweep(n_strengths: int, steps: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 20)).astype(np.float32)
    y = X[:, :3] @ np.asarray([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(256)
    y = y.astype(np.float32)
    init = _mlp_init([20, 32, 1])
    strengths = np.geomspace(1e-1, 1e-4, n_strengths).astype(np.float32)
    train = _make_train(X, y, init, steps, "squared")
    jitted = jax.jit(train)
    fns = {
        "jreg.sweep": lambda: jreg.sweep(train, strengths),
        # Chunked: 8 compiled calls of one program, each with an eighth of the memory.
        "jreg.sweep(batch_size=8)": lambda: jreg.sweep(train, strengths, batch_size=8),
        "loop of jitted runs": lambda: [jitted(s) for s in strengths],
    }
    if torch is not None:
        fns["PyTorch loop"] = lambda: _torch_loop(X, y, init, steps, strengths)
    times = _measure(fns, repeats)
    swept = jreg.sweep(train, strengths)
    check = {"loop of jitted runs": [jitted(s) for s in strengths]}
    if torch is not None:
        check["PyTorch loop"] = _torch_loop(X, y, init, steps, strengths)
    max_abs_diff = {
        name: float(max(np.max(np.abs(swept["w0"][i] - r["w0"])) for i, r in enumerate(runs)))
        for name, runs in check.items()
    }
    sweep_s = times["jreg.sweep"]["median_s"]
    return {
        "n_strengths": n_strengths,
        "steps": steps,
        "times": times,
        "time_relative_to_sweep": {name: t["median_s"] / sweep_s for name, t in times.items()},
        "max_abs_diff_of_w0_vs_sweep": max_abs_diff,
    }


def bench_compute_bound(n_samples: int, n_strengths: int, steps: int, matmul_n: int, repeats):
    sizes = [512, 1024, 10]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_samples, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], n_samples).astype(np.int32)
    train = _make_train(X, y, _mlp_init(sizes), steps, "softmax")
    strengths = np.geomspace(1e-2, 1e-5, n_strengths).astype(np.float32)
    # The machine's matmul FLOP/s, measured interleaved with the sweep (same load).
    a = jax.random.normal(jax.random.key(1), (matmul_n, matmul_n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    jitted = jax.jit(train)
    fns = {
        "jreg.sweep": lambda: jreg.sweep(train, strengths),
        "loop of jitted runs": lambda: [jitted(s) for s in strengths],
        "matmul": lambda: matmul(a, a),
    }
    times = _measure(fns, repeats)
    # Matmul FLOPs of one step: the forward pass, and the weights' gradients plus the hidden
    # layer's input gradient in the backward pass (the data's gradient is not computed).
    n_in, n_hidden, n_out = sizes
    forward = 2 * n_samples * (n_in * n_hidden + n_hidden * n_out)
    backward = 2 * n_samples * (n_in * n_hidden + 2 * n_hidden * n_out)
    flops = n_strengths * steps * (forward + backward)
    time_s = times["jreg.sweep"]["median_s"]
    achieved = flops / time_s
    peak = 2 * matmul_n**3 / times["matmul"]["median_s"]
    return {
        "sizes": sizes,
        "n_samples": n_samples,
        "n_strengths": n_strengths,
        "steps": steps,
        "times": times,
        "matmul_gflops": flops / 1e9,
        "achieved_gflop_per_s": achieved / 1e9,
        "machine_matmul_gflop_per_s": peak / 1e9,
        "matmul_size": matmul_n,
        "fraction_of_matmul": achieved / peak,
        "loop_over_sweep": times["loop of jitted runs"]["median_s"] / time_s,
    }


# --------------------------------------------------------------------------------------------
# Report.


def _markdown(results: dict, command: str) -> str:
    step, small, big = results["step_cost"], results["small_sweep"], results["compute_bound"]
    lines = [
        f"Command: `{command}`; {results['machine']['device']}, "
        f"{results['machine']['cpu_count']} CPUs, jax {results['machine']['jax']}.",
        "",
        f"Per-step cost, {step['n_params'] / 1e6:.1f}M parameters (median of warm runs):",
        "",
        "| optimizer | ms / step | first call (s) |",
        "|---|---|---|",
    ]
    for name, t in step["times"].items():
        lines.append(f"| {name} | {t['per_step_ms']:.2f} | {t['first_call_s']:.2f} |")
    lines += [
        f"| ratio (target <= 1.10) | {step['ratio']:.3f} | |",
        "",
        f"Sweep of {small['n_strengths']} L1 strengths, MLP 20-32-1, 256 samples, "
        f"{small['steps']} full-batch steps:",
        "",
        "| method | median (s) | first call (s) | time / jreg.sweep's |",
        "|---|---|---|---|",
    ]
    for name, t in small["times"].items():
        lines.append(
            f"| {name} | {t['median_s']:.3f} | {t['first_call_s']:.3f} | "
            f"{small['time_relative_to_sweep'][name]:.2f} |"
        )
    if torch is None:
        lines.append("| PyTorch loop | skipped: torch is not installed | | |")
    sweep_time, loop_time = big["times"]["jreg.sweep"], big["times"]["loop of jitted runs"]
    lines += [
        "",
        f"Compute-bound sweep: MLP {'-'.join(map(str, big['sizes']))}, {big['n_samples']} "
        f"samples, {big['n_strengths']} strengths x {big['steps']} steps:",
        "",
        "| median (s) | first call (s) | loop of jitted runs: median, first call (s) | "
        "achieved GFLOP/s | matmul GFLOP/s | fraction |",
        "|---|---|---|---|---|---|",
        f"| {sweep_time['median_s']:.3f} | {sweep_time['first_call_s']:.3f} | "
        f"{loop_time['median_s']:.3f}, {loop_time['first_call_s']:.3f} | "
        f"{big['achieved_gflop_per_s']:.1f} | {big['machine_matmul_gflop_per_s']:.1f} | "
        f"{big['fraction_of_matmul']:.2f} |",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for name, target in results["targets"].items():
        lines.append(f"| {name} | {target['measured']:.2f} | {target['met']} |")
    return "\n".join(lines) + "\n"


def _targets(results: dict) -> dict:
    relative = results["small_sweep"]["time_relative_to_sweep"]
    checks = {
        "proximal / decayed-weights step time <= 1.10": (results["step_cost"]["ratio"], 1.10),
        "loop of jitted runs / sweep time >= 1": (relative["loop of jitted runs"], 1.0),
        "compute-bound: loop of jitted runs / sweep time >= 1": (
            results["compute_bound"]["loop_over_sweep"],
            1.0,
        ),
        "PyTorch loop / sweep time >= 10": (relative.get("PyTorch loop"), 10.0),
        "sweep's fraction of matmul FLOP/s >= 0.70": (
            results["compute_bound"]["fraction_of_matmul"],
            0.70,
        ),
    }
    return {
        name: {"measured": value, "met": (value <= bound) if "<=" in name else (value >= bound)}
        for name, (value, bound) in checks.items()
        if value is not None
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--repeats", type=int, default=None, help="warm runs per measurement")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 3)
    if torch is None:
        print("torch is not installed: the PyTorch column is skipped")
    sizes = SIZES["quick" if args.quick else "full"]
    results = {
        "machine": {
            "device": str(jax.devices()[0].device_kind),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "jax": jax.__version__,
            "torch": None if torch is None else torch.__version__,
        },
        "quick": args.quick,
        "step_cost": bench_step_cost(sizes["width"], sizes["steps"], repeats),
    }
    print(f"per-step ratio proximal/decayed weights: {results['step_cost']['ratio']:.3f}")
    results["small_sweep"] = bench_small_sweep(sizes["n_strengths"], sizes["sweep_steps"], repeats)
    print(f"times relative to jreg.sweep: {results['small_sweep']['time_relative_to_sweep']}")
    results["compute_bound"] = bench_compute_bound(
        sizes["n_samples"], sizes["big_strengths"], sizes["big_steps"], sizes["matmul_n"], repeats
    )
    print(f"fraction of matmul FLOP/s: {results['compute_bound']['fraction_of_matmul']:.2f}")
    results["targets"] = _targets(results)
    stem = "transforms_quick" if args.quick else "transforms"
    command = "python benchmarks/transforms.py" + " --quick" * args.quick
    command += f" --repeats {args.repeats}" if args.repeats else ""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(_markdown(results, command))
    print(_markdown(results, command))


if __name__ == "__main__":
    main()
