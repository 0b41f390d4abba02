"""What a CSV download must look like to open safely in a spreadsheet."""

from __future__ import annotations

import re

# A CSV record whose every cell is quoted (no cell here holds a line break).
QUOTED_RECORD = re.compile(r'"(?:[^"]|"")*"(?:,"(?:[^"]|"")*")*')
