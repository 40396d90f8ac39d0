import sys

from bitcycle.compile.tclcheck import main

sys.exit(main())
