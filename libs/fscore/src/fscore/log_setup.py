"""Logging set-up for entry points only (libraries just call ``structlog.get_logger``).

Readable key=value lines in a terminal, JSON lines in services. Lines are written through
tqdm so they do not tear a progress bar.
"""

from __future__ import annotations

import logging
import sys

import structlog


class _TqdmStream:
    def __init__(self) -> None:
        self._pending = ""

    def write(self, text: str) -> None:
        from tqdm import tqdm

        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            tqdm.write(line, file=sys.stderr)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(*, json: bool = False, level: str = "info") -> None:
    # JSON lines carry a crash's traceback as structured frames (``exception``); the console renders it itself.
    rendering: list[structlog.types.Processor] = (
        [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()] if json
        else [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())])
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True), *rendering],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr if json else _TqdmStream()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
