"""Helper of test_distribute.py, run in a fresh process: a few training steps of tiny MENETs under
one strategy, per-step logs and final variables written to an .npz file.

    python distributed_run.py STRATEGY OUT.npz INIT.npz [--logical-cpus N]

STRATEGY is default, mirrored or multiworker (TF_CONFIG set by the caller). Logical CPU devices
must be configured before TensorFlow initialises, hence a process of its own. INIT.npz holds the
initial weights of every case; the first (single-device) run writes it, the others load it, so
all runs start from the same variables.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Cases: (name, released config, sync_bn, shards). "distinct": the global batch of 4 holds 4
# images of different brightness, so each half has batch statistics of its own; "repeated":
# images (a, b, a, b), so with two replicas each replica sees (a, b) and its batch statistics
# equal those of the whole batch.
# Two-task models in the sync cases: their GB/LB weights are far from 0 and 1 (with the texture
# task, GB gives about (1, 1, 0) whatever the norms).
CASES = (
    ("gb_sync", "ModelShallowNewEdgeGradBalance", True, "distinct"),
    ("lb_sync", "ModelShallowNewEdgeLossBalance", True, "distinct"),
    ("replica_bn_repeated", "MENET-LB", False, "repeated"),
    ("replica_bn_distinct", "MENET-LB", False, "distinct"),
)
# Not MENET-GB with per-replica BN: with the texture task its GB weight_texture is ~1 ulp of 1.0
# (float32 resolution of 1 - g_t / sum g), so float noise of the order of the summation order
# flips it between 0, 6e-8 and 1.2e-7, and texture (~1e9) times that moves the objective by ~1e2.
STEPS, BATCH, SIZE, DEPTH = 3, 4, 32, 2


def images(shards, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    n = STEPS * BATCH
    brightness = np.tile(np.linspace(0.25, 1.0, BATCH), STEPS)[:, None, None, None]
    clean = (rng.uniform(0, 255, [n, SIZE, SIZE, 3]) * brightness).astype("float32")
    streaks = rng.uniform(0, 80, clean.shape) * (rng.random(clean.shape) < 0.1)
    rainy = np.clip(clean + streaks, 0, 255).astype("float32")
    if shards == "repeated":
        for images in (rainy, clean):
            steps = images.reshape(STEPS, BATCH, SIZE, SIZE, 3)  # a view
            steps[:, BATCH // 2:] = steps[:, : BATCH // 2]
    return rainy, clean


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("strategy")
    parser.add_argument("out")
    parser.add_argument("init")
    parser.add_argument("--logical-cpus", type=int, default=0)
    parser.add_argument("--cases", default=",".join(c[0] for c in CASES))
    args = parser.parse_args(argv)

    import tensorflow as tf

    if args.logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus
        )
    from menet_tf.train.distribute import make_strategy

    strategy = make_strategy(args.strategy)  # first TF work of the process (multi-worker rule)
    import keras
    keras.config.disable_traceback_filtering()  # a failure shows where in Keras/TF
    import numpy as np

    import menet_tf

    init = dict(np.load(args.init)) if os.path.exists(args.init) else {}
    results = {"replicas": np.array(strategy.num_replicas_in_sync)}
    wanted = args.cases.split(",")
    for name, released, sync_bn, shards in CASES:
        if name not in wanted:
            continue
        config = menet_tf.released_config(released)
        config.model.depth = DEPTH
        config.train.jit_compile = False
        config.train.sync_batch_norm = sync_bn
        # Adam's first steps move every weight by ~lr whatever the size of its gradient, so a
        # gradient within float noise of zero (e.g. kernels feeding the 1x1 batch norms of the
        # attention block) flips its step between two equal computations. With epsilon 1 the
        # step of such a weight is proportional to its gradient, and Adam is no longer blind to
        # a wrong gradient scale (a missing 1/replicas).
        config.optimizer.epsilon = 1.0
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = menet_tf.build_model(config)
        if f"{name}/init/0" in init:
            count = len(model.get_weights())
            model.set_weights([init[f"{name}/init/{i}"] for i in range(count)])
        else:
            for i, w in enumerate(model.get_weights()):
                results[f"{name}/init/{i}"] = w
        rainy, clean = images(shards)
        # The global batch's gradient: every replica's compute_gradients summed (the optimizer
        # sums them the same way), on the first batch, from the initial variables.
        start = model.get_weights()
        first = tf.data.Dataset.from_tensor_slices((rainy[:BATCH], clean[:BATCH])).batch(BATCH)
        batch = next(iter(strategy.experimental_distribute_dataset(first)))

        def replica_gradients(data):
            gradients = model.compute_gradients(data)[0]
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, gradients)

        @tf.function
        def summed_gradients(batch):
            per_replica = strategy.run(replica_gradients, args=(batch,))
            return [strategy.experimental_local_results(g)[0] for g in per_replica]

        for i, g in enumerate(summed_gradients(batch)):
            results[f"{name}/gradient/{i}"] = g.numpy()
        results[f"{name}/names"] = np.array([v.path for v in model.weights])
        model.set_weights(start)
        data = tf.data.Dataset.from_tensor_slices((rainy, clean)).batch(BATCH).repeat()
        history = model.fit(data, epochs=STEPS, steps_per_epoch=1, verbose=0, shuffle=False)
        for key, values in history.history.items():
            results[f"{name}/log/{key}"] = np.array(values)
        for i, w in enumerate(model.get_weights()):
            results[f"{name}/final/{i}"] = w
        # A step with an Inf in the last replica's share only: skipped everywhere, nothing moves.
        bad = clean[:BATCH].copy()
        bad[-1, 0, 0, 0] = np.inf
        iterations = int(model.optimizer.iterations.numpy())
        trainable = [v.numpy() for v in model.trainable_variables]
        data = tf.data.Dataset.from_tensor_slices((rainy[:BATCH], bad)).batch(BATCH)
        skipped = model.fit(data, epochs=1, verbose=0, shuffle=False).history["skipped_steps"]
        results[f"{name}/inf_step/skipped"] = np.array(skipped)
        results[f"{name}/inf_step/iterations"] = np.array(int(model.optimizer.iterations.numpy()) - iterations)
        results[f"{name}/inf_step/moved"] = np.array(max(
            float(np.max(np.abs(v.numpy() - w))) for v, w in zip(model.trainable_variables, trainable)
        ))
        # Every replica's copy of every variable must agree (BN moving statistics included).
        spread = 0.0
        for v in model.variables:
            copies = getattr(v.value, "_values", None)
            if copies and len(copies) > 1:
                spread = max(spread, max(float(np.max(np.abs(c.numpy() - copies[0].numpy())))
                                         for c in copies[1:]))
        results[f"{name}/replica_spread"] = np.array(spread)
    if not os.path.exists(args.init):
        np.savez(args.init, **{k: v for k, v in results.items() if "/init/" in k})
    np.savez(args.out, **results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
