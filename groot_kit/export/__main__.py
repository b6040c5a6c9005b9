import sys

from groot_kit.export.cli import main

sys.exit(main())
