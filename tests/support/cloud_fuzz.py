"""Hypothesis material for the cloud client's fuzz tests: responses in the shapes of
docs/cloud-api.md, and the mutations a real BingoCloud's answers may show against them
(elements missing, extra, renamed or in the other casing, empty or odd text, cut short).
Used on the parser alone (tests/cloud/test_parse_fuzz.py) and through the simulator's HTTP
server (tests/cloud/test_response_fuzz.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from support.cloud_stub import INSTANCE_ITEM

RESPONSES: dict[str, tuple[str, str]] = {
    "describe_instances": (
        "DescribeInstances",
        f"<reservationSet><item><reservationId>r-1</reservationId><instancesSet>{INSTANCE_ITEM}"
        "</instancesSet></item></reservationSet><nextToken>page-2</nextToken>",
    ),
    "describe_volumes": (
        "DescribeVolumes",
        "<volumeSet><item><volumeId>vol-1</volumeId><volumeName>data</volumeName><size>2</size>"
        "<sizeBytes>1073741825</sizeBytes><status>in-use</status><createTime>2026-03-01T10:00:00.000Z"
        "</createTime><isRoot>false</isRoot><format>raw</format><serial>abc123</serial>"
        "<attachmentSet><item><volumeId>vol-1</volumeId><instanceId>i-1</instanceId>"
        "<device>/dev/vdc</device><status>attached</status></item></attachmentSet></item></volumeSet>",
    ),
    "describe_snapshots": (
        "DescribeSnapshots",
        "<snapshotSet><item><snapshotId>snap-1</snapshotId><volumeId>vol-1</volumeId>"
        "<status>completed</status><startTime>2026-03-01T10:00:00Z</startTime><progress>100%</progress>"
        "<volumeSize>2</volumeSize><storageId>st-1</storageId></item></snapshotSet>",
    ),
    "describe_images": (
        "DescribeImages",
        "<imagesSet><item><imageId>ami-1</imageId><name>ubuntu</name><imageState>available</imageState>"
        "<rootDeviceName>/dev/vda</rootDeviceName><osName>Ubuntu 20.04 64bit</osName>"
        "<platform>linux</platform><architecture>x86_64</architecture><blockDeviceMapping><item>"
        "<deviceName>/dev/vda</deviceName><ebs><snapshotId>snap-1</snapshotId></ebs></item>"
        "</blockDeviceMapping></item></imagesSet>",
    ),
    "describe_clusters": (
        "DescribeClusters",
        "<clusterSet><item><clusterId>c-1</clusterId><clusterName>a</clusterName>"
        "<status>available</status></item></clusterSet>",
    ),
    "describe_nodes": (
        "DescribeNodes",
        "<nodeSet><item><nodeId>n1@10.0.0.1</nodeId><clusterId>c-1</clusterId><cpuTotal>8</cpuTotal>"
        "<memoryMax>4096.0</memoryMax><diskTotal>100</diskTotal></item></nodeSet>",
    ),
    "describe_storages": (
        "DescribeStorages",
        "<storageSet><item><storageId>st-1</storageId><storageName>s</storageName><clusterId>c-1"
        "</clusterId><spaceMax>1000</spaceMax><spaceUsed>10</spaceUsed></item></storageSet>",
    ),
}

ODD_TEXT = st.one_of(
    st.just(""),
    st.sampled_from(["2.0", "-1", "1e400", "nan", "true", "2026-13-45T99:00:00Z", "item", "   "]),
    st.text(max_size=12).filter(lambda t: "\x00" not in t),
)
NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True)


def swap_case(tag: str) -> str:
    return tag[:1].swapcase() + tag[1:]


def mutate(root: ET.Element, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
    """A few mutations, each on an element drawn from below the response element."""
    parents = {element: parent for parent in root.iter() for element in parent}
    for _ in range(draw(st.integers(1, 6))):
        elements = [e for e in root.iter() if e in parents and attached(e, parents, root)]
        if not elements:
            return
        element = elements[draw(st.integers(0, len(elements) - 1))]
        op = draw(st.sampled_from(["drop", "case", "rename", "extra", "text", "cut"]))
        if op == "drop":
            parents[element].remove(element)
        elif op == "case":
            element.tag = swap_case(element.tag)
        elif op == "rename":
            element.tag = draw(NAME)
        elif op == "extra":
            extra = ET.SubElement(element, draw(NAME))
            extra.text = draw(ODD_TEXT)
        elif op == "text":
            element.text = draw(ODD_TEXT)
        elif element.text:
            element.text = element.text[: draw(st.integers(0, len(element.text)))]


def attached(element: ET.Element, parents: dict[ET.Element, ET.Element], root: ET.Element) -> bool:
    while element is not root:
        parent = parents.get(element)
        if parent is None or element not in list(parent):
            return False
        element = parent
    return True
