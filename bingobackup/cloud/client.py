"""BingoCloud API client.

The same client talks to a real BingoCloud and to the simulator. See docs/cloud-api.md.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import SecretStr

from bingobackup.cloud import _parse
from bingobackup.cloud._query import FilterValues, filter_params, list_params, optional_params
from bingobackup.cloud._xml import items, next_token, parse, text
from bingobackup.cloud.errors import (
    CloudError,
    CloudInvalidRequest,
    CloudNotFoundError,
    CloudResponseError,
    CloudRetryableError,
    CloudUnreachableError,
    error_from_response,
    unreadable_answer,
)
from bingobackup.cloud.models import (
    Cluster,
    Image,
    Instance,
    InstanceType,
    NicSpec,
    Node,
    SecurityGroup,
    Snapshot,
    StateChange,
    Storage,
    Subnet,
    Volume,
    VolumeAttachment,
    Vpc,
)
from bingobackup.cloud.signing import DEFAULT_TIMEZONE, cloud_zone, mask_key, signed_params
from bingobackup.cloud.transport import Endpoint, make_ssl_context, post_form

log = logging.getLogger("bingobackup.cloud")

T = TypeVar("T")
Filters = dict[str, FilterValues]

BACKOFF_BASE_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 5.0
DUPLICATE_IMAGE_NAME = "InvalidAMIName.Duplicate"


@contextmanager
def _naming(action: str) -> Iterator[None]:
    """Errors of the parsers (which do not know the call) name `action`."""
    try:
        yield
    except CloudError as error:
        raise error.of_action(action) from None


def new_client_token() -> str:
    """A fresh idempotency token for one logical create call (EC2: at most 64 ASCII chars)."""
    return uuid.uuid4().hex


class BingoCloudClient:
    """A signed, retrying client of one BingoCloud endpoint.

    `endpoint` is `http(s)://ADDRESS:PORT/`. `retry_window_seconds` bounds how long
    throttling, 5xx and dropped connections are retried (backoff with jitter) before the
    last error is raised. `verify` (default True) checks TLS certificates; `ca_file` adds a
    CA bundle. The secret key is never put in a log line, repr or exception.
    `page_size` is the `MaxRecords` sent by the Describe* iterators. `timezone` is the IANA
    zone of the cloud's clock: every `Timestamp` is this host's clock written in that zone.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        *,
        verify: bool = True,
        ca_file: str | None = None,
        timeout_seconds: float = 30.0,
        retry_window_seconds: float = 60.0,
        page_size: int = 100,
        timezone: str = DEFAULT_TIMEZONE,
    ) -> None:
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be between 1 and 1000 (MaxRecords), not {page_size}")
        cloud_zone(timezone)
        self._endpoint = Endpoint.parse(endpoint)
        self.endpoint = self._endpoint.url
        self.access_key = access_key
        self._secret_key = SecretStr(secret_key)
        self.verify = verify
        self.ca_file = ca_file
        self.timeout_seconds = timeout_seconds
        self.retry_window_seconds = retry_window_seconds
        self.page_size = page_size
        self.timezone = timezone
        self._ssl_context: ssl.SSLContext | None = (
            make_ssl_context(verify, ca_file) if self._endpoint.scheme == "https" else None
        )
        self._random = random.Random()

    def __repr__(self) -> str:
        return f"BingoCloudClient(endpoint={self.endpoint!r}, access_key={mask_key(self.access_key)!r})"

    def __getstate__(self) -> dict[str, Any]:
        # SSL contexts do not pickle; rebuilt on unpickling from verify/ca_file.
        state = dict(self.__dict__)
        state["_ssl_context"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._endpoint.scheme == "https":
            self._ssl_context = make_ssl_context(self.verify, self.ca_file)

    # ------------------------------------------------------------------ transport

    def _call_once(self, action: str, params: dict[str, str]) -> ET.Element:
        signed = signed_params(
            action,
            params,
            self.access_key,
            self._secret_key.get_secret_value(),
            self._endpoint.host_header,
            self._endpoint.path,
            self.timezone,
        )
        reply = post_form(
            self._endpoint,
            signed,
            action=action,
            timeout=self.timeout_seconds,
            ssl_context=self._ssl_context,
        )
        if reply.status != 200:
            raise error_from_response(
                reply.status,
                reply.body,
                action,
                timestamp=signed["Timestamp"],
                timezone=self.timezone,
                content_type=reply.content_type,
                location=reply.location,
            )
        try:
            root = parse(reply.body)
        except ET.ParseError as exc:
            raise unreadable_answer(
                200,
                reply.body,
                action,
                f"not XML the client can read ({exc})",
                content_type=reply.content_type,
            ) from None
        if root.tag.lower() == "response" and root.find("Errors") is not None:
            # An error document sent with 200, as some gateways do: the error it names.
            raise error_from_response(
                200, reply.body, action, timestamp=signed["Timestamp"], timezone=self.timezone
            )
        if not root.tag.lower().endswith("response"):
            # Well-formed XML of something else (an XHTML login or error page) would otherwise
            # read as an answer with nothing in it: no VMs, no volumes.
            raise unreadable_answer(
                200,
                reply.body,
                action,
                f"<{root.tag}> instead of <{action}Response>",
                content_type=reply.content_type,
            )
        return root

    def _call(self, action: str, params: dict[str, str]) -> ET.Element:
        """One action, retried on throttling, 5xx and dropped connections within the window.

        Mutating actions are retried too: BingoCloud (and the simulator) reject a repeated
        attach/delete with a typed error rather than doing it twice. The create calls send a
        `ClientToken` (the same one on every retry, as `params` is reused), so a retry after a
        lost reply returns the resource the first attempt made instead of making a second one;
        RegisterImage relies on the image name being unique instead (see `register_image`).
        """
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._call_once(action, params)
            except (CloudRetryableError, CloudUnreachableError) as error:
                if isinstance(error, CloudUnreachableError) and not error.transient:
                    raise
                elapsed = time.monotonic() - started
                ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
                delay = self._random.uniform(0, ceiling)  # full jitter
                if elapsed + delay > self.retry_window_seconds:
                    raise error.after_retries(attempt, elapsed) from error
                log.warning(
                    "BingoCloud %s at %s failed (attempt %d): %s; retrying in %.2f s",
                    action,
                    self.endpoint,
                    attempt,
                    error.code or error.message,
                    delay,
                )
                time.sleep(delay)

    def _pages(
        self,
        action: str,
        params: dict[str, str],
        extract: Callable[[ET.Element], list[T]],
        *,
        paged: bool = True,
    ) -> Iterator[T]:
        """Every item of a Describe* action, following `nextToken` page by page."""
        token: str | None = None
        sent: set[str] = set()
        while True:
            page_params = dict(params)
            if paged:
                page_params["MaxRecords"] = str(self.page_size)
            if token:
                page_params["NextToken"] = token
            root = self._call(action, page_params)
            with _naming(action):
                page = extract(root)
            yield from page
            token = next_token(root)
            if not token:
                return
            if token in sent:
                # A cloud that hands back a token already followed would page forever.
                raise CloudResponseError(
                    "BingoCloud sent a nextToken it had already sent; stopped paging", action=action
                )
            sent.add(token)

    def _describe(
        self,
        action: str,
        params: dict[str, str],
        set_path: str,
        parse_item: Callable[[ET.Element], T],
        *,
        paged: bool = True,
    ) -> Iterator[T]:
        return self._pages(
            action, params, lambda root: [parse_item(i) for i in items(root, set_path)], paged=paged
        )

    def _answer(self, action: str, params: dict[str, str], read: Callable[[ET.Element], T]) -> T:
        """One call's answer as `read` makes it; unreadable answers are errors naming `action`."""
        root = self._call(action, params)
        with _naming(action):
            return read(root)

    def _expect_true(self, action: str, params: dict[str, str]) -> None:
        root = self._call(action, params)
        if text(root, "return") != "true":
            raise CloudResponseError(f"BingoCloud answered return={text(root, 'return')!r}", action=action)

    # ------------------------------------------------------------------ describe

    # Describe* return iterators that page with MaxRecords/NextToken transparently.
    def describe_clusters(self, cluster_ids: Sequence[str] = ()) -> Iterator[Cluster]:
        return self._describe(
            "DescribeClusters", list_params("ClusterId", cluster_ids), "clusterSet", _parse.cluster
        )

    def describe_nodes(
        self, node_ids: Sequence[str] = (), *, cluster_id: str | None = None
    ) -> Iterator[Node]:
        params = {**list_params("NodeId", node_ids), **filter_params({"cluster-id": cluster_id or []})}
        return self._describe("DescribeNodes", params, "nodeSet", _parse.node)

    def describe_storages(
        self, storage_ids: Sequence[str] = (), *, cluster_id: str | None = None
    ) -> Iterator[Storage]:
        params = {**list_params("StorageId", storage_ids), **filter_params({"cluster-id": cluster_id or []})}
        return self._describe("DescribeStorages", params, "storageSet", _parse.storage)

    def describe_instances(
        self, instance_ids: Sequence[str] = (), *, filters: Filters | None = None
    ) -> Iterator[Instance]:
        params = {**list_params("InstanceId", instance_ids), **filter_params(filters)}
        return self._pages("DescribeInstances", params, _parse.instances_of_reservations)

    def describe_volumes(
        self, volume_ids: Sequence[str] = (), *, filters: Filters | None = None
    ) -> Iterator[Volume]:
        params = {**list_params("VolumeId", volume_ids), **filter_params(filters)}
        return self._describe("DescribeVolumes", params, "volumeSet", _parse.volume)

    def describe_snapshots(
        self, snapshot_ids: Sequence[str] = (), *, filters: Filters | None = None
    ) -> Iterator[Snapshot]:
        params = {**list_params("SnapshotId", snapshot_ids), **filter_params(filters)}
        return self._describe("DescribeSnapshots", params, "snapshotSet", _parse.snapshot)

    # The contract documents no paging for the actions below: MaxRecords is not sent, but
    # a nextToken is still followed if a cloud sends one.
    def describe_images(self, image_ids: Sequence[str] = ()) -> Iterator[Image]:
        return self._describe(
            "DescribeImages", list_params("ImageId", image_ids), "imagesSet", _parse.image, paged=False
        )

    def describe_vpcs(self, vpc_ids: Sequence[str] = ()) -> Iterator[Vpc]:
        return self._describe(
            "DescribeVpcs", list_params("VpcId", vpc_ids), "vpcSet", _parse.vpc, paged=False
        )

    def describe_subnets(
        self, subnet_ids: Sequence[str] = (), *, vpc_id: str | None = None
    ) -> Iterator[Subnet]:
        params = {**list_params("SubnetId", subnet_ids), **filter_params({"vpc-id": vpc_id or []})}
        return self._describe("DescribeSubnets", params, "subnetSet", _parse.subnet, paged=False)

    def describe_security_groups(
        self, group_ids: Sequence[str] = (), *, vpc_id: str | None = None
    ) -> Iterator[SecurityGroup]:
        params = {**list_params("GroupId", group_ids), **filter_params({"vpc-id": vpc_id or []})}
        return self._describe(
            "DescribeSecurityGroups", params, "securityGroupInfo", _parse.security_group, paged=False
        )

    def describe_instance_types(self) -> Iterator[InstanceType]:
        return self._describe(
            "DescribeInstanceTypes", {}, "instanceTypeSet", _parse.instance_type, paged=False
        )

    # ------------------------------------------------------------------ single lookups

    # Single-object lookups raise the typed NotFound error of bingobackup.cloud.errors.
    @staticmethod
    def _only(found: Iterator[T], kind: str, code: str, resource_id: str, action: str) -> T:
        for item in found:
            return item
        raise CloudNotFoundError(f"The {kind} '{resource_id}' does not exist.", code=code, action=action)

    def get_instance(self, instance_id: str) -> Instance:
        return self._only(
            self.describe_instances([instance_id]),
            "instance",
            "InvalidInstanceID.NotFound",
            instance_id,
            "DescribeInstances",
        )

    def get_volume(self, volume_id: str) -> Volume:
        return self._only(
            self.describe_volumes([volume_id]),
            "volume",
            "InvalidVolume.NotFound",
            volume_id,
            "DescribeVolumes",
        )

    def get_snapshot(self, snapshot_id: str) -> Snapshot:
        return self._only(
            self.describe_snapshots([snapshot_id]),
            "snapshot",
            "InvalidSnapshot.NotFound",
            snapshot_id,
            "DescribeSnapshots",
        )

    # ------------------------------------------------------------------ volumes and snapshots

    def create_snapshot(
        self, volume_id: str, description: str = "", *, client_token: str | None = None
    ) -> Snapshot:
        """`client_token` (default: a new one) makes retries of this call return one snapshot."""
        params = {
            "VolumeId": volume_id,
            "Description": description,
            "ClientToken": client_token or new_client_token(),
        }
        return self._answer("CreateSnapshot", params, _parse.snapshot)

    def delete_snapshot(self, snapshot_id: str) -> None:
        self._expect_true("DeleteSnapshot", {"SnapshotId": snapshot_id})

    def create_volume(
        self,
        *,
        size_bytes: int | None = None,
        snapshot_id: str | None = None,
        storage_id: str | None = None,
        name: str | None = None,
        node_id: str | None = None,
        client_token: str | None = None,
    ) -> Volume:
        """`client_token` (default: a new one) makes retries of this call return one volume."""
        if size_bytes is None and snapshot_id is None:
            raise ValueError("create_volume needs size_bytes or snapshot_id")
        params = optional_params(
            {
                "SizeBytes": size_bytes,
                "SnapshotId": snapshot_id,
                "StorageId": storage_id,
                "VolumeName": name,
                "NodeId": node_id,
                "ClientToken": client_token or new_client_token(),
            }
        )
        return self._answer("CreateVolume", params, _parse.volume)

    def delete_volume(self, volume_id: str) -> None:
        self._expect_true("DeleteVolume", {"VolumeId": volume_id})

    def attach_volume(self, volume_id: str, instance_id: str, device: str) -> VolumeAttachment:
        params = {"VolumeId": volume_id, "InstanceId": instance_id, "Device": device}
        return self._answer("AttachVolume", params, _parse.attachment)

    def detach_volume(
        self, volume_id: str, instance_id: str | None = None, *, force: bool = False
    ) -> VolumeAttachment:
        params = optional_params({"VolumeId": volume_id, "InstanceId": instance_id, "Force": force or None})
        return self._answer("DetachVolume", params, _parse.attachment)

    # ------------------------------------------------------------------ instances

    def _state_changes(self, action: str, params: dict[str, str]) -> list[StateChange]:
        return self._answer(
            action, params, lambda root: [_parse.state_change(i) for i in items(root, "instancesSet")]
        )

    def stop_instances(self, instance_ids: Sequence[str], *, force: bool = False) -> list[StateChange]:
        params = {**list_params("InstanceId", instance_ids), **optional_params({"Force": force or None})}
        return self._state_changes("StopInstances", params)

    def start_instances(self, instance_ids: Sequence[str]) -> list[StateChange]:
        return self._state_changes("StartInstances", list_params("InstanceId", instance_ids))

    def terminate_instances(self, instance_ids: Sequence[str]) -> list[StateChange]:
        return self._state_changes("TerminateInstances", list_params("InstanceId", instance_ids))

    def register_image(
        self, *, name: str, root_snapshot_id: str, root_device_name: str = "/dev/vda", description: str = ""
    ) -> str:
        """Register an image; its `name` must be unused.

        RegisterImage takes no ClientToken (in EC2 either); the unique name stands in for
        one. When the name is taken by an image of this very snapshot and device (what a
        retry after a lost reply finds), that image is the one this call made and is
        returned; a name taken by anything else is an error.
        """
        params = {
            "Name": name,
            "RootDeviceName": root_device_name,
            "BlockDeviceMapping.1.DeviceName": root_device_name,
            "BlockDeviceMapping.1.Ebs.SnapshotId": root_snapshot_id,
            "Description": description,
        }
        try:
            image_id = text(self._call("RegisterImage", params), "imageId")
        except CloudInvalidRequest as error:
            if error.code != DUPLICATE_IMAGE_NAME:
                raise
            same = self._image_named(name, root_snapshot_id, root_device_name)
            if same is None:
                raise
            log.info("RegisterImage %r: the image already exists as %s (a lost reply)", name, same)
            return same
        if not image_id:
            raise CloudResponseError("BingoCloud returned no imageId", action="RegisterImage")
        return image_id

    def _image_named(self, name: str, root_snapshot_id: str, root_device_name: str) -> str | None:
        for image in self.describe_images():
            if (image.name, image.root_snapshot_id, image.root_device_name) == (
                name,
                root_snapshot_id,
                root_device_name,
            ):
                return image.image_id
        return None

    def deregister_image(self, image_id: str) -> None:
        self._expect_true("DeregisterImage", {"ImageId": image_id})

    def run_instance(
        self,
        *,
        image_id: str,
        name: str,
        instance_type: str | None = None,
        cpu: int | None = None,
        memory_mib: int | None = None,
        node_id: str | None = None,
        storage_id: str | None = None,
        nics: Sequence[NicSpec] = (),
        root_volume_name: str | None = None,
        client_token: str | None = None,
    ) -> Instance:
        """Launch one VM from an image; `root_volume_name` names its new root volume
        (BingoCloud extension `RootVolumeName`; the cloud's default is `<name>-root`).
        `client_token` (default: a new one) makes retries of this call launch one VM."""
        params = optional_params(
            {
                "ImageId": image_id,
                "MinCount": 1,
                "MaxCount": 1,
                "InstanceName": name,
                "InstanceType": instance_type,
                "Cpu": cpu,
                "Memory": memory_mib,
                "Placement.HostId": node_id,
                "StorageId": storage_id,
                "RootVolumeName": root_volume_name,
                "ClientToken": client_token or new_client_token(),
            }
        )
        for n, nic in enumerate(nics, start=1):
            prefix = f"NetworkInterface.{n}"
            params.update(
                optional_params(
                    {
                        f"{prefix}.DeviceIndex": nic.device_index,
                        f"{prefix}.SubnetId": nic.subnet_id,
                        f"{prefix}.PrivateIpAddress": nic.private_ip_address,
                        f"{prefix}.MacAddress": nic.mac_address,
                    }
                )
            )
            params.update(list_params(f"{prefix}.SecurityGroupId", nic.security_group_ids))
        launched = self._answer(
            "RunInstances", params, lambda root: [_parse.instance(i) for i in items(root, "instancesSet")]
        )
        if not launched:
            raise CloudResponseError("BingoCloud launched no instance", action="RunInstances")
        return launched[0]
