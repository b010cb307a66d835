"""The cloud's timezone: the client stamps each request with this host's clock written as wall
time in the registered cloud's zone, the simulator reads stamps in its own `--timezone` and
compares them with the true instant, so neither depends on the zone of the machine it runs on."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.cloud_stub import ACCESS_KEY as STUB_ACCESS_KEY
from support.cloud_stub import SECRET_KEY as STUB_SECRET_KEY
from support.cloud_stub import StubCloud, ok
from support.testkeys import ACCESS_KEY, SECRET_KEY
from typer.testing import CliRunner

from bingobackup.cli.main import app
from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.cloud import BingoCloudClient, CloudClockError, signing
from bingobackup.resources.clouds import register_cloud
from bingobackup.resources.errors import RegistrationError
from bingobackup.resources.store import InMemoryRegistryStore
from bingobackup.resources.users import LOCAL_ADMIN
from bingobackup.sim.server import RunningSimulator, start_simulator

StartSim = Callable[..., RunningSimulator]


def wall_time_now(offset_hours: float) -> datetime:
    """The wall clock of a zone with a fixed UTC offset, computed without any zone database."""
    return datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=offset_hours)


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[StartSim]:
    """Starts simulators (empty scenario unless told) that are stopped after the test."""
    started: list[RunningSimulator] = []

    def start(timezone: str = signing.DEFAULT_TIMEZONE, scenario: str = "empty") -> RunningSimulator:
        running = start_simulator(
            tmp_path / f"sim-{len(started)}", ACCESS_KEY, SECRET_KEY, scenario=scenario, timezone=timezone
        )
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def post_raw(endpoint: str, params: dict[str, str]) -> tuple[int, str]:
    """POST a parameter set as it is (no signing added); (status, body)."""
    data = urllib.parse.urlencode(params).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(endpoint, data=data), timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as failed:
        return failed.code, failed.read().decode()


def stamped(sim: RunningSimulator, timestamp: str) -> dict[str, str]:
    """A DescribeClusters request carrying `timestamp`, signed for `sim`."""
    host = urllib.parse.urlsplit(sim.endpoint).netloc
    params = signing.signed_params("DescribeClusters", {}, ACCESS_KEY, SECRET_KEY, host)
    params["Timestamp"] = timestamp
    params["Signature"] = signing.signature(SECRET_KEY, "POST", host, "/", params)
    return params


@pytest.mark.parametrize(("zone", "offset_hours"), [("Asia/Shanghai", 8), ("UTC", 0), ("Asia/Kolkata", 5.5)])
def test_client_stamps_wall_time_of_the_cloud_zone_whatever_the_machine_zone(
    machine_tz: str, stub: StubCloud, zone: str, offset_hours: float
) -> None:
    stub.script(ok("DescribeClusters", "<clusterSet/>"))
    client = BingoCloudClient(stub.endpoint, STUB_ACCESS_KEY, STUB_SECRET_KEY, timezone=zone)

    assert list(client.describe_clusters()) == []

    stamp = stub.received[0].params["Timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), stamp
    sent = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(sent - wall_time_now(offset_hours)) < timedelta(minutes=1)


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "UTC", "America/New_York"])
def test_client_and_simulator_of_one_zone_agree_whatever_the_machine_zone(
    machine_tz: str, start_sim: StartSim, zone: str
) -> None:
    sim = start_sim(zone)
    client = BingoCloudClient(sim.endpoint, ACCESS_KEY, SECRET_KEY, timezone=zone, retry_window_seconds=0)

    assert [c.name for c in client.describe_clusters()] == ["cluster-a", "cluster-b"]


def test_simulator_reads_stamps_in_its_zone_not_in_the_machine_zone(
    machine_tz: str, start_sim: StartSim
) -> None:
    sim = start_sim("Asia/Shanghai")
    shanghai = wall_time_now(8)
    machine_local = datetime.now()  # UTC or New York wall time: 8 or 12-13 hours from Shanghai

    accepted = [
        post_raw(sim.endpoint, stamped(sim, f"{shanghai:%Y-%m-%dT%H:%M:%S}Z")),
        post_raw(sim.endpoint, stamped(sim, f"{shanghai:%Y-%m-%dT%H:%M:%S}.123Z")),
    ]
    refused = post_raw(sim.endpoint, stamped(sim, f"{machine_local:%Y-%m-%dT%H:%M:%S}.000Z"))

    assert [status for status, _ in accepted] == [200, 200], accepted
    assert refused[0] == 400 and "<Code>RequestExpired</Code>" in refused[1]
    assert "Asia/Shanghai" in refused[1]


@pytest.mark.parametrize(
    "stamp", ["2026-12-06T12:43:35+08:00", "2026-12-06 12:43:35Z", "2026-12-06T12:43:35.1Z"]
)
def test_simulator_refuses_other_timestamp_forms_naming_the_two_it_takes(
    start_sim: StartSim, stamp: str
) -> None:
    sim = start_sim()

    status, body = post_raw(sim.endpoint, stamped(sim, stamp))

    assert status == 400 and "<Code>InvalidParameterValue</Code>" in body
    assert "YYYY-MM-DDTHH:MM:SS.mmmZ or YYYY-MM-DDTHH:MM:SSZ" in body


def test_client_whose_cloud_zone_is_wrong_gets_an_error_naming_the_setting(start_sim: StartSim) -> None:
    sim = start_sim("UTC")
    client = BingoCloudClient(sim.endpoint, ACCESS_KEY, SECRET_KEY)  # the default, Asia/Shanghai

    with pytest.raises(CloudClockError) as raised:
        list(client.describe_clusters())

    text = str(raised.value)
    assert "RequestExpired" in text and "480 minutes ahead of the cloud's clock" in text
    assert "Asia/Shanghai, the timezone setting of the registered cloud" in text
    assert "bingobackup cloud settings CLOUD --timezone ZONE" in text
    assert raised.value.attempts == 1  # refused at once: retrying cannot fix a zone
    assert SECRET_KEY not in text


def test_registering_with_a_zone_the_cloud_does_not_use_saves_nothing(start_sim: StartSim) -> None:
    sim = start_sim("Asia/Shanghai")
    store = InMemoryRegistryStore()
    registration = {
        "name": "east",
        "address": "127.0.0.1",
        "port": sim.port,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "backup_host": "i-ANY",
    }

    with pytest.raises(RegistrationError) as wrong_zone:
        register_cloud(store, LOCAL_ADMIN, {**registration, "timezone": "UTC"}, retry_window_seconds=0)
    with pytest.raises(RegistrationError) as unknown_zone:
        register_cloud(store, LOCAL_ADMIN, {**registration, "timezone": "Mars/Base"})

    assert "refused the request time" in str(wrong_zone.value)
    assert "wall time in the cloud's timezone UTC" in str(wrong_zone.value)
    assert "give it with --timezone ZONE" in str(wrong_zone.value)
    assert "timezone: Value error, timezone 'Mars/Base' is not an IANA time zone" in str(unknown_zone.value)
    assert store.list_clouds() == []


def test_timezone_through_the_cli_and_a_registration_saved_without_one(
    prefect_server: ServerInfo, start_sim: StartSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentUpdate

    from tasks.blocks import PrefectRegistryStore, block_document_name

    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    sim = start_sim("UTC", scenario="demo")
    host = next(
        i.instance_id
        for i in BingoCloudClient(sim.endpoint, ACCESS_KEY, SECRET_KEY, timezone="UTC").describe_instances()
        if i.name.startswith("backup-host-")
    )
    name = f"tz-{uuid.uuid4().hex[:6]}"
    register = ["cloud", "register", "--name", name, "--address", "127.0.0.1", "--port", str(sim.port)]
    register += ["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, "--backup-host", host]

    default_zone = runner.invoke(app, register)
    utc = runner.invoke(app, [*register, "--timezone", "UTC"], catch_exceptions=False)
    back_to_default = runner.invoke(app, ["cloud", "settings", name, "--timezone", "Asia/Shanghai"])
    listed = runner.invoke(app, ["cloud", "list"], catch_exceptions=False).output

    assert isinstance(default_zone.exception, RegistrationError)
    assert "cloud's timezone Asia/Shanghai" in str(default_zone.exception)
    assert utc.exit_code == 0 and "clock in UTC; keys verified" in utc.output
    assert isinstance(back_to_default.exception, RegistrationError)  # re-verified, so refused
    assert re.search(rf"{name}\s.*\sUTC\s", listed), listed

    # A registration saved before the field existed has no `timezone` in its block document.
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(
            block_document_name(name), "bingocloud", include_secrets=True
        )
        data = {k: v for k, v in document.data.items() if k != "timezone"}
        client.update_block_document(document.id, BlockDocumentUpdate(data=data, merge_existing_data=False))
        assert (
            "timezone" not in client.read_block_document_by_name(block_document_name(name), "bingocloud").data
        )

    loaded = PrefectRegistryStore().get_cloud(name)
    assert loaded is not None and loaded.timezone == "Asia/Shanghai"
    assert loaded.secret_key.get_secret_value() == SECRET_KEY
    listed = runner.invoke(app, ["cloud", "list"], catch_exceptions=False).output
    assert re.search(rf"{name}\s.*\sAsia/Shanghai\s", listed), listed
