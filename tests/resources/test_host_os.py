"""A backup host's OS when the cloud does not send osName: from its image, else the admin's
word (`host register --os`); and the worker's own check of /etc/os-release."""

from __future__ import annotations

from unittest import mock

import pytest

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.models import Image, Instance, InstanceState
from bingobackup.cloud.transport import Reply
from bingobackup.resources.errors import IncompatibleBackupHost, RegistrationError
from bingobackup.resources.hosts import (
    SupportedOs,
    backup_host_os,
    check_local_os,
    os_from_text,
    register_backup_host,
)
from bingobackup.resources.models import CloudRegistration, User
from bingobackup.resources.store import InMemoryRegistryStore

NS = "http://ec2.amazonaws.com/doc/2009-08-15/"


def _instance(os_name: str = "", platform: str = "linux", image_id: str = "ami-1") -> Instance:
    return Instance(
        instance_id="i-BK000001",
        name="bk",
        image_id=image_id,
        state=InstanceState(code=16, name="running"),
        instance_type="m1",
        cpu=1,
        memory_mib=1024,
        cluster_id="c-1",
        node_id="n1@10.0.0.1",
        storage_id="st-1",
        platform=platform,
        os_name=os_name,
        os_version="20.04" if os_name else "",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ubuntu 20.04 64bit", SupportedOs("Ubuntu", "20.04")),
        ("ubuntu-22.04-server-amd64", SupportedOs("Ubuntu", "22.04")),
        ("CentOS-7.6.1810-x86_64", SupportedOs("CentOS", "7.6")),
        ("openEuler 20.03 LTS SP1", SupportedOs("openEuler", "20.03")),
        ("CentOS 7.60", None),
        ("Ubuntu 20.041", None),
        ("Debian 11", None),
        ("template-42", None),
    ],
)
def test_os_named_in_free_text(text: str, expected: SupportedOs | None) -> None:
    assert os_from_text(text) == expected


def test_os_from_the_image_when_the_instance_does_not_say() -> None:
    image = Image(image_id="ami-1", name="base", os_name="CentOS 7.6 64bit", platform="linux")
    assert backup_host_os(_instance(), image) == ("CentOS", "7.6", "x86_64", "image ami-1")


def test_unknown_os_is_refused_with_the_command_to_confirm_it_and_accepted_once_confirmed() -> None:
    image = Image(image_id="ami-1", name="golden-template", description="our build")
    with pytest.raises(RegistrationError) as caught:
        backup_host_os(_instance(), image)
    message = str(caught.value)
    assert "does not say which OS instance 'i-BK000001'" in message and "golden-template" in message
    assert '--os "Ubuntu 20.04"' in message

    assert backup_host_os(_instance(), image, "Ubuntu 20.04") == ("Ubuntu", "20.04", "x86_64", "admin")
    assert backup_host_os(_instance(), None, "openEuler 20.03") == ("openEuler", "20.03", "x86_64", "admin")


def test_admin_word_must_be_on_the_list_and_agree_with_the_cloud() -> None:
    with pytest.raises(
        RegistrationError, match=r"--os 'Debian 11' is not an OS the backup-host agent supports"
    ):
        backup_host_os(_instance(), None, "Debian 11")
    with pytest.raises(
        RegistrationError, match=r"BingoCloud says .* runs Ubuntu 20.04 \(cloud\), but --os says CentOS 7.6"
    ):
        backup_host_os(_instance(os_name="Ubuntu"), None, "CentOS 7.6")
    windows = Image(image_id="ami-w", name="win2019", platform="windows")
    with pytest.raises(IncompatibleBackupHost, match="does not support"):
        backup_host_os(_instance(), windows, "Ubuntu 20.04")


def _reply(action: str, inner: str) -> Reply:
    body = f'<{action}Response xmlns="{NS}"><requestId>r</requestId>{inner}</{action}Response>'
    return Reply(200, body.encode())


def test_register_reads_the_image_over_the_api_records_and_lists_the_source() -> None:
    """A real cloud's DescribeInstances without osName/osVersion/architecture (the public
    client's shape), then DescribeImages naming the OS."""
    instance = (
        "<reservationSet><item><instancesSet><item><instanceId>i-BK000001</instanceId>"
        "<instanceName>bk</instanceName><imageId>ami-7</imageId><instanceState><code>16</code>"
        "<name>running</name></instanceState><instanceType>m1</instanceType><vmtype_cpu>2</vmtype_cpu>"
        "<vmtype_mem>2048</vmtype_mem><placement><availabilityZone>c-1</availabilityZone></placement>"
        "<hostAddress>n1@10.0.0.1</hostAddress><storageId>st-1</storageId><platform>linux</platform>"
        "</item></instancesSet></item></reservationSet>"
    )
    image = "<imagesSet><item><imageId>ami-7</imageId><name>u2004</name><osName>Ubuntu 20.04 64bit</osName></item></imagesSet>"
    replies = iter([_reply("DescribeInstances", instance), _reply("DescribeImages", image)])
    store = InMemoryRegistryStore()
    store.save_cloud(
        CloudRegistration(
            name="real", address="127.0.0.1", access_key="AK", secret_key="SK", backup_host="i-BK000001"
        )
    )
    client = BingoCloudClient("http://127.0.0.1:9/", "AK", "SK", retry_window_seconds=0)
    admin = User(name="root", role="admin")
    with mock.patch("bingobackup.cloud.client.post_form", side_effect=lambda *a, **k: next(replies)):
        host = register_backup_host(store, admin, "real", "i-BK000001", client=client)
    assert (host.os_name, host.os_version, host.architecture, host.os_source) == (
        "Ubuntu",
        "20.04",
        "x86_64",
        "image ami-7",
    )
    assert store.get_host("i-BK000001") == host


UBUNTU_2004 = 'NAME="Ubuntu"\nVERSION="20.04.6 LTS (Focal Fossa)"\nID=ubuntu\nVERSION_ID="20.04"\n'
CENTOS_7 = 'NAME="CentOS Linux"\nVERSION="7 (Core)"\nID="centos"\nVERSION_ID="7"\nPRETTY_NAME="CentOS Linux 7 (Core)"\n'
OPENEULER = 'NAME="openEuler"\nVERSION="20.03 (LTS-SP3)"\nID="openEuler"\nVERSION_ID="20.03"\n'
DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'


def test_worker_accepts_the_supported_os_releases() -> None:
    assert check_local_os(UBUNTU_2004, "x86_64") == SupportedOs("Ubuntu", "20.04")
    assert check_local_os(OPENEULER, "x86_64") == SupportedOs("openEuler", "20.03")
    assert check_local_os(CENTOS_7, "x86_64", "CentOS Linux release 7.6.1810 (Core)\n") == SupportedOs(
        "CentOS", "7.6"
    )


@pytest.mark.parametrize(
    ("os_release", "machine", "centos_release", "shown"),
    [
        (DEBIAN, "x86_64", "", "Debian GNU/Linux 12 (bookworm) on x86_64"),
        (UBUNTU_2004, "aarch64", "", "Ubuntu 20.04 on aarch64"),
        (
            CENTOS_7,
            "x86_64",
            "CentOS Linux release 7.9.2009 (Core)",
            "CentOS Linux 7 (Core) (version 7.9.2009)",
        ),
        (CENTOS_7, "x86_64", "", "CentOS Linux 7 (Core) on x86_64"),
        ("", "x86_64", "", "an OS /etc/os-release does not name (version unknown)"),
    ],
)
def test_worker_refuses_other_systems_naming_what_it_found(
    os_release: str, machine: str, centos_release: str, shown: str
) -> None:
    with pytest.raises(IncompatibleBackupHost) as caught:
        check_local_os(os_release, machine, centos_release)
    message = str(caught.value)
    assert f"This machine runs {shown}" in message and "Supported: Ubuntu 18.04" in message
