"""The `retouch` command: a thin layer over the flows. Errors come out as one line naming the file.

`flows.cli.main` builds the app from the command modules (stages, catalog, detector, inpainter, ops), which
share only `flows.cli.common`; none imports another. The C heap is set up first, before any library starts a
thread (`pipeline.engine.memory`).
"""

from pipeline.engine.memory import keep_freed_memory

keep_freed_memory()

from flows.cli.main import app  # noqa: E402

__all__ = ["app"]
