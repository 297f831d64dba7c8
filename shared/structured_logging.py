"""structlog set up once per process: JSON in production, console in development,
phone numbers masked wherever they appear (clause 5.3)."""

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from shared.phone import mask_phone

_PHONE = re.compile(r"\+?\b[1-9]\d{9,14}\b")


def _mask_phones(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = _PHONE.sub(lambda m: mask_phone(m.group(0)), value)
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _mask_phones,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(name)s %(message)s")
    # aiokafka logs every rebalance and retry at INFO; keep the signal.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
