"""The `retouch` command: a thin layer over the flows. Errors come out as one line naming the file.

`flows.cli.main` builds the app from the command modules (stages, catalog, detector, inpainter, ops), which
share only `flows.cli.common`; none imports another.
"""

from flows.cli.main import app

__all__ = ["app"]
