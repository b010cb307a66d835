"""bingobackup's engine: no Prefect here (DESIGN.md §2).

Its loggers (`bingobackup.*`) write what an operator reads in a run's log: VMs and disks
started and finished, snapshots and volumes made and removed, power off/on, retries. INFO
is their level wherever they run, as it would otherwise be the root logger's WARNING, and
these lines would never reach the run's log (the Prefect settings that ship them there are
in `bingobackup.cli.environment.LOGGING_ENVIRONMENT`).
"""

import logging

logging.getLogger(__name__).setLevel(logging.INFO)
