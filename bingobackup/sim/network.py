"""NICs: private IPs inside the subnet and MAC addresses, each unique in the cloud."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence

from bingobackup.sim.errors import invalid, not_found
from bingobackup.sim.state import NicRec, SimState

_MAC_PREFIX = "d0:0d"  # BingoCloud-style locally administered prefix


def _live_nics(state: SimState, reserved: Sequence[NicRec]) -> list[NicRec]:
    """NICs of every VM not terminated, plus those being made for the VM being built."""
    return [nic for i in state.instances.values() if i.state != "terminated" for nic in i.nics] + list(
        reserved
    )


def used_ips(state: SimState, reserved: Sequence[NicRec] = ()) -> set[str]:
    return {nic.private_ip_address for nic in _live_nics(state, reserved)}


def used_macs(state: SimState, reserved: Sequence[NicRec] = ()) -> set[str]:
    return {nic.mac_address for nic in _live_nics(state, reserved)}


def _free_ip(state: SimState, cidr: str, reserved: Sequence[NicRec]) -> str:
    taken = used_ips(state, reserved)
    network = ipaddress.ip_network(cidr)
    # .1 is the gateway, as on most clouds.
    for n, host in enumerate(network.hosts()):
        if n and str(host) not in taken:
            return str(host)
    raise invalid("SubnetId", cidr, "the subnet has no free address left")


def _free_mac(state: SimState, rng: random.Random, reserved: Sequence[NicRec]) -> str:
    taken = used_macs(state, reserved)
    while True:
        mac = _MAC_PREFIX + "".join(f":{rng.randrange(256):02x}" for _ in range(4))
        if mac not in taken:
            return mac


def make_nic(
    state: SimState,
    *,
    device_index: int,
    subnet_id: str,
    ip: str | None = None,
    mac: str | None = None,
    group_ids: list[str] | None = None,
    rng: random.Random | None = None,
    reserved: Sequence[NicRec] = (),
) -> NicRec:
    """A validated NIC; `InvalidParameterValue` for an IP outside the subnet or in use, or a MAC in use."""
    subnet = state.subnets.get(subnet_id)
    if subnet is None:
        raise not_found("subnet", subnet_id)
    if ip is None:
        ip = _free_ip(state, subnet.cidr_block, reserved)
    else:
        try:
            inside = ipaddress.ip_address(ip) in ipaddress.ip_network(subnet.cidr_block)
        except ValueError:
            raise invalid("PrivateIpAddress", ip, "not an IPv4 address") from None
        if not inside:
            raise invalid("PrivateIpAddress", ip, f"outside subnet {subnet_id} ({subnet.cidr_block})")
        if ip in used_ips(state, reserved):
            raise invalid("PrivateIpAddress", ip, "the address is already in use")
    if mac is None:
        mac = _free_mac(state, rng or random.Random(), reserved)
    else:
        mac = mac.lower()
        if mac in used_macs(state, reserved):
            raise invalid("MacAddress", mac, "the MAC address is already in use")
    groups = list(group_ids or [])
    for group_id in groups:
        if group_id not in state.security_groups:
            raise not_found("group", group_id)
    if not groups:
        groups = [g.group_id for g in state.security_groups.values() if g.vpc_id == subnet.vpc_id][:1]
    return NicRec(
        network_interface_id=state.new_id("eni"),
        device_index=device_index,
        vpc_id=subnet.vpc_id,
        subnet_id=subnet_id,
        private_ip_address=ip,
        mac_address=mac,
        group_ids=groups,
    )


def subnets_of_cluster(state: SimState, cluster_id: str) -> list[str]:
    vpcs = {v.vpc_id for v in state.vpcs.values() if v.cluster_id == cluster_id}
    return [s.subnet_id for s in state.subnets.values() if s.vpc_id in vpcs]
