"""Running a worker as a service: one job per module.

    loop.py       the consumer loop, the stop flag, exit codes
    alarm.py      the coordinator's wall-clock alarms and its ``waiting`` warning
    recovery.py   a restarted coordinator rebuilding its state from its inbox
    settings.py   the course config from a file, ``--set`` and the environment (pydantic-settings); connect
    entry.py      the services' shared command-line arguments and exit-code mapping
"""

from fscore.service.alarm import WallAlarm
from fscore.service.loop import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_TRANSPORT,
    StopFlag,
    new_incarnation,
    serve,
)
from fscore.service.recovery import recover, same_course
from fscore.service.settings import ENV_SETTINGS, ServiceEnvironment, connect, service_config

__all__ = ["ENV_SETTINGS", "EXIT_CONFIG", "EXIT_ERROR", "EXIT_OK", "EXIT_STOPPED", "EXIT_TRANSPORT",
           "ServiceEnvironment", "StopFlag", "WallAlarm", "connect", "new_incarnation", "recover", "same_course",
           "serve", "service_config"]
