"""The authors' TF1 artefacts: their checkpoints (``checkpoint``: read into the port), their
released training graphs (``graphs``: found and read as data; ``session``: run as they are).

Low in the house on purpose: inference loads TF1 checkpoints and bench times the authors' graph,
so this package imports only the basics. Comparing the two is compare/'s job.
"""
from menet_tf import _compat

__getattr__ = _compat.package_getattr(__name__)
