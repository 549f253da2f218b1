import sys

from jaxlstm._src.cli import main

sys.exit(main())
