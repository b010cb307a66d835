"""Responses in the shapes of docs/cloud-api.md become the typed models, field by field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support.cloud_stub import INSTANCE_ITEM, StubCloud, ok

from bingobackup.cloud import BingoCloudClient, CloudError
from bingobackup.cloud.models import NicSpec


def test_instance_with_nics_disks_and_tags(stub: StubCloud, stub_client: BingoCloudClient) -> None:
    stub.script(
        ok(
            "DescribeInstances",
            f"<reservationSet><item><reservationId>r-1</reservationId>"
            f"<instancesSet>{INSTANCE_ITEM}</instancesSet></item></reservationSet>",
        )
    )

    vm = stub_client.get_instance("i-49ADD723")

    assert (vm.instance_id, vm.name, vm.state.name, vm.state.code) == ("i-49ADD723", "web-1", "running", 16)
    assert (vm.cpu, vm.memory_mib, vm.node_id, vm.storage_id) == (2, 4096, "node1@10.0.0.1", "st-1")
    assert (vm.os_name, vm.os_version, vm.cluster_id) == ("Ubuntu", "20.04", "c-1")
    assert vm.launch_time == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    (nic,) = vm.network_interfaces
    assert nic.primary and nic.mac_address == "d0:0d:49:ad:d7:23" and nic.subnet_id == "subnet-1"
    assert [g.group_id for g in nic.security_groups] == ["sg-1"]
    assert [(b.device_name, b.volume_id, b.delete_on_termination) for b in vm.block_devices] == [
        ("/dev/vda", "vol-root", True),
        ("/dev/vdb", "vol-data", False),
    ]
    assert vm.tags == {"env": "prod"}
    assert stub.received[0].params["InstanceId.1"] == "i-49ADD723"


def test_volume_prefers_exact_bytes_and_reads_attachments(
    stub: StubCloud, stub_client: BingoCloudClient
) -> None:
    stub.script(
        ok(
            "DescribeVolumes",
            "<volumeSet><item><volumeId>vol-1</volumeId><volumeName>data</volumeName><size>2</size>"
            "<sizeBytes>1073741825</sizeBytes><status>in-use</status><isRoot>false</isRoot>"
            "<format>raw</format><serial>abc123</serial><nodeId>node1@10.0.0.1</nodeId>"
            "<attachmentSet><item><volumeId>vol-1</volumeId><instanceId>i-1</instanceId>"
            "<device>/dev/vdc</device><status>attached</status></item></attachmentSet></item>"
            "<item><volumeId>vol-2</volumeId><size>3</size><status>available</status></item></volumeSet>",
        )
    )

    first, second = stub_client.describe_volumes()

    assert first.size_bytes == 1073741825 and first.size_gib == 2
    assert (first.serial, first.format, first.is_root) == ("abc123", "raw", False)
    assert [(a.instance_id, a.device, a.status) for a in first.attachments] == [
        ("i-1", "/dev/vdc", "attached")
    ]
    assert second.size_bytes == 3 << 30, "without sizeBytes the GiB size is used"


def test_create_calls_read_top_level_elements(stub: StubCloud, stub_client: BingoCloudClient) -> None:
    stub.script(
        ok(
            "CreateSnapshot",
            "<snapshotId>snap-1</snapshotId><volumeId>vol-1</volumeId><status>pending</status>"
            "<progress>0%</progress><volumeSize>1</volumeSize><volumeSizeBytes>1000</volumeSizeBytes>",
        ),
        ok(
            "CreateVolume",
            "<volumeId>vol-9</volumeId><sizeBytes>1000</sizeBytes><snapshotId>snap-1</snapshotId>"
            "<status>creating</status><storageId>st-2</storageId>",
        ),
        ok(
            "AttachVolume",
            "<volumeId>vol-9</volumeId><instanceId>i-b</instanceId><device>/dev/vdc</device>"
            "<status>attaching</status><attachTime>2026-03-01T10:00:00Z</attachTime>",
        ),
        ok("DeleteVolume", "<return>true</return>"),
    )

    snap = stub_client.create_snapshot("vol-1", "nightly")
    volume = stub_client.create_volume(snapshot_id=snap.snapshot_id, storage_id="st-2", name="restore-1")
    attached = stub_client.attach_volume("vol-9", "i-b", "/dev/vdc")
    stub_client.delete_volume("vol-9")

    assert (snap.snapshot_id, snap.status, snap.volume_size_bytes) == ("snap-1", "pending", 1000)
    assert (volume.volume_id, volume.status, volume.storage_id) == ("vol-9", "creating", "st-2")
    assert attached.status == "attaching"
    create_params = stub.received[1].params
    assert (create_params["SnapshotId"], create_params["StorageId"], create_params["VolumeName"]) == (
        "snap-1",
        "st-2",
        "restore-1",
    )
    assert "SizeBytes" not in create_params
    assert stub.received[0].params["Description"] == "nightly"


def test_return_false_is_an_error(stub: StubCloud, stub_client: BingoCloudClient) -> None:
    stub.script(ok("DeleteSnapshot", "<return>false</return>"))

    with pytest.raises(CloudError, match="DeleteSnapshot"):
        stub_client.delete_snapshot("snap-1")


def test_run_instance_sends_nics_and_reads_the_new_vm(stub: StubCloud, stub_client: BingoCloudClient) -> None:
    stub.script(
        ok("RunInstances", f"<reservationId>r-2</reservationId><instancesSet>{INSTANCE_ITEM}</instancesSet>")
    )

    vm = stub_client.run_instance(
        image_id="ami-1",
        name="web-1",
        cpu=2,
        memory_mib=4096,
        node_id="node1@10.0.0.1",
        storage_id="st-1",
        nics=[
            NicSpec(
                device_index=0,
                subnet_id="subnet-1",
                private_ip_address="192.168.1.5",
                security_group_ids=("sg-1",),
            )
        ],
    )

    assert vm.instance_id == "i-49ADD723"
    params = stub.received[0].params
    assert params["ImageId"] == "ami-1" and params["MinCount"] == "1" and params["MaxCount"] == "1"
    assert (params["Cpu"], params["Memory"], params["InstanceName"]) == ("2", "4096", "web-1")
    assert params["Placement.HostId"] == "node1@10.0.0.1"
    assert params["NetworkInterface.1.DeviceIndex"] == "0"
    assert params["NetworkInterface.1.PrivateIpAddress"] == "192.168.1.5"
    assert params["NetworkInterface.1.SecurityGroupId.1"] == "sg-1"
    assert "NetworkInterface.1.MacAddress" not in params and "InstanceType" not in params


def test_state_changes_images_and_networks(stub: StubCloud, stub_client: BingoCloudClient) -> None:
    stub.script(
        ok(
            "StopInstances",
            "<instancesSet><item><instanceId>i-1</instanceId><currentState><code>64</code><name>stopping</name>"
            "</currentState><previousState><code>16</code><name>running</name></previousState></item>"
            "</instancesSet>",
        ),
        ok("RegisterImage", "<imageId>ami-7</imageId>"),
        ok(
            "DescribeImages",
            "<imagesSet><item><imageId>ami-7</imageId><name>restored</name><imageState>available</imageState>"
            "<rootDeviceName>/dev/vda</rootDeviceName><blockDeviceMapping><item><deviceName>/dev/vda"
            "</deviceName><ebs><snapshotId>snap-1</snapshotId></ebs></item></blockDeviceMapping></item>"
            "</imagesSet>",
        ),
        ok(
            "DescribeSubnets",
            "<subnetSet><item><subnetId>subnet-1</subnetId><subnetName>lan</subnetName><vpcId>vpc-1</vpcId>"
            "<cidrBlock>192.168.1.0/24</cidrBlock><availableIpAddressCount>250</availableIpAddressCount>"
            "</item></subnetSet>",
        ),
        ok(
            "DescribeSecurityGroups",
            "<securityGroupInfo><item><groupId>sg-1</groupId><groupName>default</groupName>"
            "<groupDescription>all</groupDescription><vpcId>vpc-1</vpcId></item></securityGroupInfo>",
        ),
    )

    (change,) = stub_client.stop_instances(["i-1"], force=True)
    image_id = stub_client.register_image(name="restored", root_snapshot_id="snap-1")
    (image,) = stub_client.describe_images([image_id])
    (subnet,) = stub_client.describe_subnets(vpc_id="vpc-1")
    (group,) = stub_client.describe_security_groups(vpc_id="vpc-1")

    assert (change.previous_state.name, change.current_state.name) == ("running", "stopping")
    assert stub.received[0].params["Force"] == "true"
    assert stub.received[1].params["BlockDeviceMapping.1.Ebs.SnapshotId"] == "snap-1"
    assert (image.image_id, image.root_snapshot_id, image.state) == ("ami-7", "snap-1", "available")
    assert (subnet.name, subnet.available_ip_address_count) == ("lan", 250)
    assert stub.received[3].params["Filter.1.Value.1"] == "vpc-1"
    assert (group.group_id, group.description) == ("sg-1", "all")
    assert "MaxRecords" not in stub.received[4].params


def test_item_missing_required_element_is_a_clear_error(
    stub: StubCloud, stub_client: BingoCloudClient
) -> None:
    stub.script(ok("DescribeStorages", "<storageSet><item><storageId>st-1</storageId></item></storageSet>"))

    with pytest.raises(CloudError, match="Storage the client cannot read") as caught:
        list(stub_client.describe_storages())

    assert caught.value.code == "MalformedResponse"
