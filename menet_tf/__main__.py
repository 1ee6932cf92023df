import sys

from menet_tf.cli.main import main

sys.exit(main())
