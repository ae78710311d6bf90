"""Serial scales and height-weight stations: `driver = "scale"` in a `[devices.<id>]` table."""

from drivers.scale.driver import ScaleDriver

DRIVER = ScaleDriver

__all__ = ["DRIVER", "ScaleDriver"]
