"""The ``menet-tf`` command line: main wires the commands; each other module is one thin
command (parse, call the library, print). Nothing in menet_tf imports this package.
"""
from menet_tf import _compat

__getattr__ = _compat.package_getattr(__name__)
