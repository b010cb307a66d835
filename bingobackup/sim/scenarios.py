"""What a new state directory holds: `demo` (a small, realistic cloud) or `scale` (many VMs).

The infrastructure (clusters, nodes, storages, networks, instance types) is the same for
both; the VMs differ. Disk content is generated deterministically from the VM names.
"""

from __future__ import annotations

from bingobackup.sim.content import KIB, ContentMix
from bingobackup.sim.provision import GIB, MIB, DiskSpec, VmSpec, provision_vm
from bingobackup.sim.state import (
    ClusterRec,
    InstanceTypeRec,
    NodeRec,
    SecurityGroupRec,
    StateStore,
    StorageRec,
    SubnetRec,
    VpcRec,
)

TIB = 1 << 40
SCENARIOS = ("demo", "scale", "empty")

_INSTANCE_TYPES = [
    ("m1.small", 1, 1024),
    ("m1.medium", 2, 2048),
    ("m1.large", 4, 8192),
    ("m1.xlarge", 8, 16384),
]

# cluster id, name, node names, (storage id, name, type, TiB), vpc cidr, subnets
_CLUSTERS = [
    (
        "cc01",
        "cluster-a",
        ["node-a1@10.10.0.11", "node-a2@10.10.0.12", "node-a3@10.10.0.13"],
        [("sto-a-local", "local-a", "local", 2), ("sto-a-ceph", "ceph-a", "ceph", 8)],
        "10.10.0.0/16",
        [("web-a", "10.10.1.0/24"), ("db-a", "10.10.2.0/24")],
    ),
    (
        "cc02",
        "cluster-b",
        ["node-b1@10.20.0.11", "node-b2@10.20.0.12"],
        [("sto-b-local", "local-b", "local", 2)],
        "10.20.0.0/16",
        [("web-b", "10.20.1.0/24")],
    ),
]


def create_infrastructure(store: StateStore) -> None:
    state = store.state
    for name, cpu, memory in _INSTANCE_TYPES:
        state.instance_types[name] = InstanceTypeRec(instance_type=name, cpu=cpu, memory_mib=memory)
    for cluster_id, name, nodes, storages, vpc_cidr, subnets in _CLUSTERS:
        state.clusters[cluster_id] = ClusterRec(
            cluster_id=cluster_id, name=name, description=f"simulated {name}"
        )
        for node_id in nodes:
            state.nodes[node_id] = NodeRec(node_id=node_id, cluster_id=cluster_id)
        for storage_id, storage_name, kind, tib in storages:
            state.storages[storage_id] = StorageRec(
                storage_id=storage_id,
                name=storage_name,
                type=kind,
                cluster_id=cluster_id,
                space_max=tib * TIB,
            )
        vpc = VpcRec(
            vpc_id=state.new_id("vpc"), name=f"vpc-{name}", cidr_block=vpc_cidr, cluster_id=cluster_id
        )
        state.vpcs[vpc.vpc_id] = vpc
        for subnet_name, cidr in subnets:
            subnet = SubnetRec(
                subnet_id=state.new_id("subnet"), name=subnet_name, vpc_id=vpc.vpc_id, cidr_block=cidr
            )
            state.subnets[subnet.subnet_id] = subnet
        for group_name in ("default", "web"):
            group = SecurityGroupRec(
                group_id=state.new_id("sg"),
                group_name=group_name,
                description=f"{group_name} ({name})",
                vpc_id=vpc.vpc_id,
            )
            state.security_groups[group.group_id] = group


def _disk(size_mib: int, data_mib: int, **extra: object) -> DiskSpec:
    # Apparent sizes stay at 1–2 GiB so that the demo's end-to-end check (a full SHA-256 of
    # every exported image against its source) takes seconds; `sim add-vm` takes real-size
    # images for rehearsals and benchmarks.
    return DiskSpec(size_bytes=size_mib * MIB, data_bytes=data_mib * MIB, **extra)


def _backup_host(cluster: str, node: str) -> VmSpec:
    return VmSpec(
        name=f"backup-host-{cluster}",
        cluster=cluster,
        node=node,
        instance_type="m1.large",
        disks=[_disk(1024, 4)],
    )


def demo_vms() -> list[VmSpec]:
    a, b = "cluster-a", "cluster-b"
    return [_backup_host(a, "node-a1"), _backup_host(b, "node-b1"), *_cluster_a_vms(a), *_cluster_b_vms(b)]


def _cluster_a_vms(a: str) -> list[VmSpec]:
    """The demo's first cluster: several disks, several NICs, a raw disk, Windows, an old CentOS."""
    return [
        VmSpec(
            name="linux_local",
            cluster=a,
            node="node-a1",
            os_name="CentOS",
            os_version="7.6",
            disks=[_disk(2048, 24)],
        ),
        VmSpec(
            name="linux_mul_disk",
            cluster=a,
            node="node-a2",
            storage="sto-a-ceph",
            os_version="18.04",
            disks=[
                _disk(2048, 20),
                _disk(1024, 16, name="linux_mul_disk-data1"),
                _disk(1024, 12, name="linux_mul_disk-data2"),
            ],
        ),
        VmSpec(
            name="linux_mul_nic",
            cluster=a,
            node="node-a2",
            subnets=["web-a", "db-a"],
            disks=[_disk(2048, 16)],
        ),
        VmSpec(
            name="raw_disk_vm",
            cluster=a,
            node="node-a3",
            os_version="22.04",
            disks=[_disk(1024, 16, format="raw")],
        ),
        VmSpec(
            name="win2019-ad",
            cluster=a,
            node="node-a3",
            instance_type="m1.large",
            platform="windows",
            os_name="Windows Server",
            os_version="2019",
            disks=[_disk(2048, 32)],
        ),
        VmSpec(
            name="centos6-legacy",
            cluster=a,
            node="node-a1",
            os_name="CentOS",
            os_version="6.10",
            disks=[_disk(1024, 8)],
        ),
    ]


def _cluster_b_vms(b: str) -> list[VmSpec]:
    """The demo's second cluster: a web server, a database with a data disk, a Debian host."""
    return [
        VmSpec(name="web-b-01", cluster=b, node="node-b1", os_version="22.04", disks=[_disk(2048, 16)]),
        VmSpec(
            name="db-b-01",
            cluster=b,
            node="node-b2",
            disks=[_disk(2048, 16), _disk(2048, 16, name="db-b-01-data")],
        ),
        VmSpec(
            name="debian-tools",
            cluster=b,
            node="node-b2",
            os_name="Debian",
            os_version="11",
            disks=[_disk(1024, 8)],
        ),
    ]


_SCALE_MIX = ContentMix(min_extent=64 * KIB, max_extent=128 * KIB)


def scale_vms(count: int = 100, disks_per_vm: int = 4) -> list[VmSpec]:
    vms = [_backup_host("cluster-a", "node-a1"), _backup_host("cluster-b", "node-b1")]
    for n in range(count):
        cluster = "cluster-a" if n % 2 == 0 else "cluster-b"
        disks = [
            DiskSpec(size_bytes=20 * GIB, data_bytes=192 * KIB, mix=_SCALE_MIX) for _ in range(disks_per_vm)
        ]
        vms.append(VmSpec(name=f"scale-vm-{n:03d}", cluster=cluster, disks=disks))
    return vms


def create_scenario(store: StateStore, scenario: str) -> None:
    """Fill an empty state with `scenario` and save it."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    with store.lock:
        create_infrastructure(store)
        vms = {"demo": demo_vms, "scale": scale_vms, "empty": list}[scenario]()
        for spec in vms:
            provision_vm(store, spec)
        store.save()
