import sys

from services.consent.rebuild.cli import main

sys.exit(main())
