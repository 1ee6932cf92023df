"""The tasks MENET learns at once (MENET_SPEC.md, "Losses"); all on images in 0..255.

Each task is a callable ``task(clean, derained) -> scalar float32`` with a ``name``; the names are
the keys of the training logs (``mse``, ``edge``, ``texture``, ``vgg``). Losses are always
computed in float32, whatever the compute dtype of the network, because the texture loss reaches
1e14 and would overflow float16.
"""
import contextlib
import os

import keras
import tensorflow as tf

from menet_tf.errors import ConfigError

TEXTURE_FORMS = ("released", "paper")
# Caffe preprocessing of the ImageNet VGG19 weights: BGR order, these channel means subtracted.
VGG_BGR_MEAN = (103.939, 116.779, 123.68)
VGG_LAYER = "block3_conv4"  # conv3_4, taken after its relu


def _mean_squared_error(a, b):
    """tf.losses.mean_squared_error of TF1 with unit weights: the mean over every element."""
    return tf.reduce_mean(tf.math.squared_difference(a, b))


def reconstruction_loss(clean, derained):
    """L_p: pixel MSE."""
    return _mean_squared_error(derained, clean)


def edge_loss(clean, derained):
    """L_e: MSE of the Sobel responses (tf.image.sobel_edges: reflect padding, both directions).

    The Sobel filter (padding included) is linear, so sobel(derained) - sobel(clean) is taken
    as sobel(derained - clean): one filtering instead of two, and one in the backward pass.
    """
    difference = tf.convert_to_tensor(derained) - tf.convert_to_tensor(clean)
    return tf.reduce_mean(tf.square(tf.image.sobel_edges(difference)))


def patch_gram(images):
    """48 x 48 Gram matrix of the 4x4 RGB patches of each image: F^T F, F = [H*W/16, 48]."""
    patches = tf.nn.space_to_depth(images, 4)
    features = tf.reshape(patches, [tf.shape(images)[0], -1, 48])
    return tf.matmul(features, features, transpose_a=True)


def gram_mean(images):
    """Mean entry of each image's ``patch_gram``, without forming the Gram matrix.

    The mean of the 48 x 48 entries of F^T F is sum_p (sum_i F_pi)^2 / 48^2: the squared sums
    of the 4x4 RGB patches, added up. The same number, with 48 times fewer multiplications
    and a gradient (2 * patch sum, spread over the patch) as cheap.
    """
    patch_sums = tf.reduce_sum(tf.nn.space_to_depth(images, 4), axis=-1)
    return tf.reduce_sum(tf.square(patch_sums), axis=[1, 2]) / 48.0**2


def texture_loss_released(clean, derained):
    """L_t as the released graphs compute it: one scalar per image, the mean entry of its Gram
    matrix; the loss is the batch mean of the squared difference of those scalars."""
    return _mean_squared_error(gram_mean(derained), gram_mean(clean))


def texture_loss_paper(clean, derained):
    """L_t of the paper's Eq. 7: squared Frobenius norm of the Gram-matrix difference.

    The paper gives no normalisation. Ours: each Gram matrix is divided by the number of 4x4
    patches (so the loss does not grow with the image size), the squared Frobenius norm is
    summed over the 48 x 48 entries and averaged over the batch.
    """
    patches = tf.cast(tf.shape(derained)[1] * tf.shape(derained)[2] // 16, tf.float32)
    diff = (patch_gram(derained) - patch_gram(clean)) / patches
    return tf.reduce_mean(tf.reduce_sum(tf.square(diff), axis=[1, 2]))


_FOR_INFERENCE = []


@contextlib.contextmanager
def for_inference():
    """Build models whose VGG perceptual loss will not be computed (inference, export).

    Only training needs the ImageNet VGG19 weights file; a model trained with the ``vgg`` task
    and loaded here to de-rain gets the frozen VGG19 without reading the file (a ``.keras``
    file restores the VGG variables it saved anyway). The loss refuses to run without them.
    """
    _FOR_INFERENCE.append(True)
    try:
        yield
    finally:
        _FOR_INFERENCE.pop()


def _vgg_weights_file(weights):
    """The weights file to read, None for "random", or ConfigError when training would need it;
    inside :func:`for_inference` a missing file is not an error (None: not read)."""
    if weights == "random":
        return None
    if weights is not None and os.path.isfile(weights):
        return weights
    if _FOR_INFERENCE:
        return None
    if weights is None:
        raise ConfigError(
            "the VGG perceptual loss needs ImageNet VGG19 weights: pass the path of the Keras"
            " file vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 (vgg_weights in the"
            " configuration, --vgg-weights on the command line); menet-tf downloads nothing"
        )
    raise ConfigError(f"{weights}: VGG19 weights file not found")


class PerceptualLoss(keras.layers.Layer):
    """L_vgg (Table IV): MSE of VGG19 conv3_4 activations, Caffe preprocessing, frozen weights.

    ``weights`` is the path of the Keras ImageNet VGG19 weights file (no top), e.g.
    ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``; nothing is downloaded. ``"random"``
    builds random weights, for tests only. Inside :func:`for_inference` the file may be
    missing: the loss is then not computable (``call`` refuses), but the model loads.
    """

    def __init__(self, weights=None, **kwargs):
        kwargs.setdefault("name", "vgg")
        super().__init__(**kwargs)
        path = _vgg_weights_file(weights)
        self.weights_path = weights
        self.computable = weights == "random" or path is not None
        vgg = keras.applications.VGG19(include_top=False, weights=path,
                                       input_shape=(None, None, 3))
        self.features = keras.Model(vgg.input, vgg.get_layer(VGG_LAYER).output, name="vgg19_conv3_4")
        self.features.trainable = False

    def _preprocess(self, images):
        return images[..., ::-1] - tf.constant(VGG_BGR_MEAN, images.dtype)

    def call(self, clean, derained):
        if not self.computable:
            raise ConfigError(f"{self.weights_path}: VGG19 weights file not found; the model"
                              " was loaded for inference, training needs the file")
        a = self.features(self._preprocess(derained), training=False)
        b = self.features(self._preprocess(clean), training=False)
        return _mean_squared_error(tf.cast(a, tf.float32), tf.cast(b, tf.float32))


TASK_FUNCTIONS = {
    "mse": reconstruction_loss,
    "edge": edge_loss,
}


def make_task(name, texture_form="released", vgg_weights=None):
    """The loss function of the task called ``name``."""
    if name in TASK_FUNCTIONS:
        return TASK_FUNCTIONS[name]
    if name == "texture":
        if texture_form not in TEXTURE_FORMS:
            raise ConfigError(f"texture_form must be one of {TEXTURE_FORMS}, got {texture_form!r}")
        return texture_loss_released if texture_form == "released" else texture_loss_paper
    if name == "vgg":
        return PerceptualLoss(vgg_weights)
    raise ConfigError(
        f"unknown task {name!r}; the tasks are {sorted([*TASK_FUNCTIONS, 'texture', 'vgg'])}"
    )
