"""``jreg.sweep`` against a Python loop of jitted runs: an MLP trained with Adam on digits.

The workload of issue 20 (a flax/optax user's trial, in plain jax/optax): scikit-learn's digits
(1797 x 64, pixels / 16), an MLP 64-128-10, 300 full-batch steps of Adam followed by
``jreg.proximal(prox.l1)`` (learning rate 1e-2) at each of 32 strengths in [1e-5, 1e-2], float32.

Compared, interleaved in each repeat (the machine may be shared: contention hits all alike):
``jreg.sweep(train, strengths)``, the loop ``[jit(train)(s) for s in strengths]``, and
``jit(vmap(train))``, the program ``jreg.sweep`` ran before it chose a ``lax.map`` loop on CPU.
The first call (compilation included) is reported apart from the median of warm calls; the
results are checked equal to the loop's.

    python benchmarks/sweep_mlp.py            # writes benchmarks/results/sweep_mlp.{json,md}
    python benchmarks/sweep_mlp.py --quick    # 4 strengths x 20 steps (proves the script works)
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _results import write as write_results
from sklearn.datasets import load_digits

import jreg

SIZES = {"full": {"n_strengths": 32, "steps": 300}, "quick": {"n_strengths": 4, "steps": 20}}


def make_train(steps: int, seed: int = 0):
    """A whole training run at one L1 strength: the MLP's parameters after ``steps`` steps."""
    digits = load_digits()
    X = jnp.asarray(digits.data / 16.0, jnp.float32)
    y = jnp.asarray(digits.target, jnp.int32)
    rng = np.random.default_rng(seed)
    init = {}
    for i, (n_in, n_out) in enumerate([(64, 128), (128, 10)]):
        init[f"w{i}"] = jnp.asarray(rng.standard_normal((n_in, n_out)) / np.sqrt(n_in), jnp.float32)
        init[f"b{i}"] = jnp.zeros(n_out, jnp.float32)

    def loss(params):
        logits = jax.nn.relu(X @ params["w0"] + params["b0"]) @ params["w1"] + params["b1"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def train(strength):
        tx = optax.chain(optax.adam(1e-2), jreg.proximal(jreg.prox.l1, strength, 1e-2))

        def step(carry, _):
            params, state = carry
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            return (optax.apply_updates(params, updates), state), None

        return jax.lax.scan(step, (init, tx.init(init)), length=steps)[0][0]

    return train


def _timed(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument("--repeats", type=int, default=5, help="warm runs of each method")
    args = parser.parse_args(argv)
    sizes = SIZES["quick" if args.quick else "full"]
    train = make_train(sizes["steps"])
    strengths = np.geomspace(1e-2, 1e-5, sizes["n_strengths"]).astype(np.float32)
    jitted, vmapped = jax.jit(train), jax.jit(jax.vmap(train))
    methods = {
        "jreg.sweep": lambda: jreg.sweep(train, strengths),
        "loop of jitted runs": lambda: [jitted(s) for s in strengths],
        "jit(vmap(train))": lambda: vmapped(strengths),
    }
    first = {name: _timed(run) for name, run in methods.items()}
    warm = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, run in methods.items():
            warm[name].append(_timed(run))
    loop = np.stack([w["w0"] for w in methods["loop of jitted runs"]()])
    max_abs_diff = float(np.max(np.abs(methods["jreg.sweep"]()["w0"] - loop)))
    loop_median = np.median(warm["loop of jitted runs"])
    rows = [
        {"method": name, "first_call_s": first[name], "median_s": float(np.median(warm[name])),
         "warm_s": warm[name], "loop_over_method": float(loop_median / np.median(warm[name]))}
        for name in methods
    ]  # fmt: skip
    command = "python benchmarks/sweep_mlp.py" + " --quick" * args.quick
    command += f" --repeats {args.repeats}" * (args.repeats != 5)
    lines = [
        f"Command: `{command}`; {jax.devices()[0].device_kind}, jax {jax.__version__}. "
        f"Digits MLP 64-128-10, {sizes['n_strengths']} L1 strengths x {sizes['steps']} Adam "
        f"steps, float32; median of {args.repeats} warm runs, interleaved. Largest |w0| "
        f"difference, sweep vs loop: {max_abs_diff:.1e}.",
        "",
        "| method | median (s) | first call (s) | loop time / method time |",
        "|---|---|---|---|",
    ] + [
        f"| {r['method']} | {r['median_s']:.3f} | {r['first_call_s']:.3f} | "
        f"{r['loop_over_method']:.2f} |"
        for r in rows
    ]
    report = "\n".join(lines)
    write_results("sweep_mlp_quick" if args.quick else "sweep_mlp", rows, report)
    print(report)


if __name__ == "__main__":
    main()
