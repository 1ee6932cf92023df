import sys

from menet_tf.cli import main

sys.exit(main())
