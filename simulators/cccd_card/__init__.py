"""A virtual Vietnamese chip citizen ID (CCCD) on the real PC/SC stack.

It connects to vpcd (pcscd's virtual reader driver) as a TCP client, so the driver under test
talks to pcscd exactly as to a real card. `python -m simulators.cccd_card` runs it alone.
"""

from simulators.cccd_card.card import start_part

__all__ = ["start_part"]
