"""``menet-tf serve``: a local de-raining page and HTTP API over one loaded model.

Sits above ``infer`` (beside ``compare``): the model is loaded by ``menet_tf.infer.load`` and
run by its Derainer, so the server de-rains exactly as ``menet-tf derain`` does. Needs the
optional extra ``pip install menet-tf[serve]`` (Starlette, uvicorn, python-multipart); only
``app`` imports Starlette, so the rest stays importable without it.

    limits   the upload/pixel/queue limits and the HTTP problems (status + one-line message)
    upload   request bytes -> RGB image (as ``derain`` reads a file) and result -> bytes
    worker   the one model thread, its bounded queue and same-size batching
    describe what ``/v1/model`` and the page say about the model
    app      the Starlette routes: the page, ``/v1/derain``, ``/v1/health``, ``/v1/model``
"""
