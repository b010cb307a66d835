"""Restore: backed-up VMs to new VMs, backed-up disks to new volumes (no Prefect import).

`plan.py` turns a restore spec and what the catalog knows of the backed-up VMs into a
checked plan; `steps.py` carries it out on the cloud; `ledger.py` remembers every resource
a run creates so that a failure removes them, or names the ones it could not remove.
"""
