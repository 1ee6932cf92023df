"""The network and its training step: what MENET is and how it takes one step.

network (the architecture), layers (fused batch norm, conv -> BN and its folding, residual and
attention blocks), conv_gradient (how the convolutions are differentiated), losses (the tasks),
weighting (fixed, GB, LB), metrics (PSNR/SSIM), multitask (the Keras model whose train_step
weighs the tasks). Imports only menet_tf basics (config, errors).
"""
from menet_tf import _compat

__getattr__ = _compat.package_getattr(__name__)
