"""The measured MCU rates: flashswap core's table (flashswap/mcus.py), re-exported.

The planner prices recomputation with them, and flashswap never imports the analyzer, so the
table lives in flashswap; the analyzer and its users keep importing it from here.
"""

from flashswap.mcus import *  # noqa: F403
