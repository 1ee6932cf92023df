"""``menet-tf import-tf1``: turn an authors' TF1 checkpoint into a Keras ``.keras`` model, and
``menet-tf configs``: list or write the released models' configurations."""
import os

from menet_tf.cli import options


def register(sub):
    p = sub.add_parser(
        "import-tf1",
        help="import an authors' TF1 checkpoint and save it as a Keras .keras model",
        description=(
            "Read a checkpoint written by the authors' TF1 code (weights and BN moving"
            " statistics; optimiser state is ignored) and save the model in the Keras format."
            " The architecture is read off the checkpoint unless --model-name names a released"
            " model."
        ),
    )
    p.add_argument("checkpoint", help="checkpoint prefix (e.g. .../model.final-100) or its folder")
    options.add_out(p, "where to write the .keras file", required=True, metavar="FILE.keras",
                    old=("--output",))
    options.add_model_name(
        p, help="released model name (e.g. ModelShallowNewCaEdgeGramGradBalance or MENET-GB);"
        " sets the tasks and weighting saved with the model")
    options.old_spelling(p, "--model", "model_name", "--model-name", metavar="NAME")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=import_tf1)

    c = sub.add_parser(
        "configs",
        help="list the released models' configurations, or write them as JSON",
        description="List the released model names, or write one JSON file per model.",
    )
    c.add_argument("--write", metavar="DIR", help="write <name>.json for every released model")
    c.set_defaults(func=configs)


def import_tf1(args):
    from menet_tf import config as config_lib
    from menet_tf.authors import checkpoint as tf1
    from menet_tf.errors import MenetError
    from menet_tf.files import replacing
    from menet_tf.model.multitask import build_model

    options.require(args, "out", "-o/--out")
    output = args.out
    if not output.endswith(".keras"):
        raise MenetError(f"{output}: the output must end in .keras")
    if os.path.exists(output) and not args.force:
        raise MenetError(f"{output} exists; pass --force to overwrite it")
    prefix, _, shapes = tf1.read_checkpoint(args.checkpoint)
    if args.model_name:
        cfg = config_lib.released_config(args.model_name)
    else:
        depth, attention = tf1.architecture_of(shapes)
        if depth == 0:
            raise MenetError(f"{prefix}: no MENET variables (derain/res_*) in this checkpoint")
        cfg = config_lib.ExperimentConfig(
            name=os.path.basename(prefix),
            model=config_lib.ModelConfig(depth=depth, attention=attention),
        )
    model = build_model(cfg)
    report = tf1.load_checkpoint(model, prefix)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with replacing(output, suffix=".keras", what=" the model") as tmp:
        model.save(tmp)  # never a half-written file under the final name
    print(
        f"imported {len(report.loaded)} variables from {prefix}"
        f" ({len(report.ignored)} optimiser variables ignored);"
        f" depth {model.depth}, attention {tf1.attention_words(model.attention_block)},"
        f" tasks {', '.join(model.task_names)} ({model.weighting_scheme})"
    )
    print(f"saved {output}")
    return 0


def configs(args):
    from menet_tf import config as config_lib

    if args.write:
        os.makedirs(args.write, exist_ok=True)
        for name in sorted(config_lib.RELEASED):
            config_lib.save_config(config_lib.released_config(name), os.path.join(args.write, f"{name}.json"))
        print(f"wrote {len(config_lib.RELEASED)} configurations to {args.write}")
        return 0
    aliases = {v: k for k, v in config_lib.ALIASES.items()}
    for name in sorted(config_lib.RELEASED):
        c = config_lib.released_config(name)
        alias = f" ({aliases[name]})" if name in aliases else ""
        print(
            f"{name}{alias}: depth {c.model.depth}, attention {c.model.attention},"
            f" tasks {'+'.join(c.loss.tasks)}, weighting {c.loss.weighting}"
            + (f" {c.loss.task_weights}" if c.loss.task_weights else "")
        )
    return 0
