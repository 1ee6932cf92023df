"""Install script; the metadata lives in setup.cfg.

Here only: the top-level ``experiments/`` folder (the paper's tables and one configuration per
released model) travels in the wheel as the package ``menet_tf.evaluation.experiments`` (its
files are package data, setup.cfg), so ``menet-tf table table1`` works from any installed copy.
"""
from setuptools import find_packages, setup

EXPERIMENTS = "menet_tf.evaluation.experiments"

setup(packages=find_packages(include=["menet_tf", "menet_tf.*"]) + [EXPERIMENTS],
      package_dir={EXPERIMENTS: "experiments"})
