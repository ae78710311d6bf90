import sys

from simulators.cccd_card.card import main

sys.exit(main())
