"""The thresholds' background job, for `cloud.wiring.jobs()`."""

from cloud.scheduler import Job
from cloud.settings import Settings
from cloud.thresholds.check import check_thresholds


def threshold_jobs(settings: Settings) -> list[Job]:
    """`thresholds`: every `threshold_interval`, fire the thresholds reached this period."""
    return [Job("thresholds", settings.threshold_interval, check_thresholds)]
