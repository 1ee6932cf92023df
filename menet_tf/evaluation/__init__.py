"""Scoring de-rained test sets, and the paper's tables and figures built from those scores.

- ``protocols``: the three protocols (authors' crops, Y, RGB) and their arithmetic;
- ``scoring``: ``evaluate`` a model on a test set, write metrics.csv and summary.json;
- ``table_plan``: a table file, its rows' configurations, the data it needs, each row's state;
- ``table_run``: ``run_table``: train (resuming), score, tabulate and plot a table;
- ``tabulate``: table.csv and table.md, ours beside the paper's;
- ``figures``: Fig. 8 and 9 and the grid of outputs.

Named ``evaluation`` so that ``menet_tf.evaluate`` stays the function. Imports infer, train,
data, model and the basics.
"""
from menet_tf import _compat

__getattr__ = _compat.package_getattr(__name__)
