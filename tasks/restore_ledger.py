"""The restore ledger's keeper (`bingobackup.restore.ledger.LedgerKeeper`) as Prefect
variables: one per restore job, VM and writing process, tagged `bingobackup-restore-ledger`
and `bingobackup-restore:<job>`, so that the job's next run finds what a killed run created
(tasks/variables.py: why the Prefect server)."""

from __future__ import annotations

from bingobackup.restore.ledger import LedgerRecord
from tasks.variables import delete_variable, save_variable, variable_name, variables_tagged

LEDGER_TAG = "bingobackup-restore-ledger"
WHAT_CHARS = 80  # a variable holds 5000 characters: a VM's 26 disks and its temporaries fit


def _job_tag(job: str) -> str:
    return f"bingobackup-restore:{job}"


class PrefectRestoreLedgerKeeper:
    def save(self, record: LedgerRecord) -> None:
        name = variable_name("bingobackup-restore", record.job, record.vm, record.writer)
        if record.items:
            short = tuple(i.model_copy(update={"what": i.what[:WHAT_CHARS]}) for i in record.items)
            value = record.model_copy(update={"items": short}).model_dump(mode="json")
            save_variable(name, value, [LEDGER_TAG, _job_tag(record.job)])
        else:
            delete_variable(name)

    def of_job(self, job: str) -> list[LedgerRecord]:
        return [LedgerRecord.model_validate(variable.value) for variable in variables_tagged(_job_tag(job))]
