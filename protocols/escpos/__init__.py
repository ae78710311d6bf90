"""ESC/POS: what python-escpos lacks (status and automatic status back, reply splitting) and a
command parser for the simulated printer. Sans-IO and MicroPython-portable."""
