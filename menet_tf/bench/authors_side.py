"""The authors' released graph beside the port in ``menet-tf bench``: opened, given the port's
weights, and doing the port's work in each timed group."""
import os

import numpy as np

from menet_tf.errors import MenetError


def open_authors(authors_dir, name):
    """The authors' released graph of ``name``, weights restored or seeded, and its record."""
    from menet_tf.authors import graphs
    from menet_tf.authors.session import AuthorsGraph

    models = graphs.find_released(authors_dir)
    if not models:
        raise MenetError(f"{authors_dir}: no released .meta graphs of the authors found here")
    try:
        released = graphs.select(models, [name])[0]
    except (MenetError, IndexError, KeyError) as err:
        raise MenetError(f"{authors_dir}: no released graph of {name} ({err})") from None
    graph = AuthorsGraph(released.meta_path)
    if released.has_data:
        graph.restore(released.checkpoint_prefix)
        weights = "released checkpoint"
    else:
        graph.initialise(seed=0)
        weights = "seeded (the .data file is not in this folder)"
    graph.reset_optimizer()
    return graph, {"name": released.name, "meta": os.fspath(released.meta_path), "weights": weights}


def copy_authors_weights(graph, model):
    """The port runs the same weights as the authors' graph (timing barely depends on them, but
    the same clip masks and magnitudes keep the comparison exact)."""
    from menet_tf.authors.checkpoint import variable_map

    values = graph.variables()
    for name, variable in variable_map(model).items():
        if name in values:
            variable.assign(np.asarray(values[name], variable.dtype))


def add_authors(groups, key, graph, multiple, sizes, x, notes):
    """The authors' graph into each group (``key``: role -> group name), doing the port's work
    (their training step only at the one batch shape their graph trains on)."""
    import tensorflow as tf

    from menet_tf.infer.tiling import pad_to_multiple

    padded = pad_to_multiple(tf.constant(x.large), multiple)[0].numpy()
    h, w = sizes.large
    groups[key["infer_one"]][0]["authors"] = lambda: graph.infer(x.one)
    groups[key["infer_batch"]][0]["authors"] = lambda: graph.infer(x.many)
    # Same work as the port's pad mode: reflection padding, the network, the crop.
    groups[key["infer_large"]][0]["authors"] = lambda: graph.infer(padded)[:, :h, :w]
    if key["train"] not in groups:
        return
    if tuple(graph.train_shape) != x.rainy.shape:
        notes.append(
            f"authors' training step not timed: their graph trains on batches of exactly"
            f" {list(graph.train_shape)} only (--quick uses {list(x.rainy.shape)})")
        return
    # The judged figure: the authors' released step as it is (objective, task losses and
    # weights, PSNR fetched). The port's step does more: it also logs SSIM every step.
    # "authors_logs" is their step asked for the same logs (SSIM added to their graph with
    # tf.image.ssim), for reference.
    train = groups[key["train"]][0]
    train["authors"] = lambda: graph.step(x.rainy, x.clean, train=True)
    train["authors_logs"] = lambda: graph.step(x.rainy, x.clean, train=True, ssim=True)
