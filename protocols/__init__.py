"""Sans-IO codecs and state machines. Portable to MicroPython: see DESIGN §6."""
