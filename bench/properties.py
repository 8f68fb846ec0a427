"""Benchmark (not a test): what paho-mqtt's MQTT 5 properties cost per received packet, paho's own against the
shared tables of ftel/mqtt_properties.py.

paho decodes a ``Properties`` object for every PUBLISH (and PUBACK) it receives. Timed here: making one and
decoding an empty property block (what nearly every message of ours carries) and one with a property, each
``--packets`` times, with paho's own methods and with the shared tables, and the ratio. What it does to a worker
is in bench/drain.py's and bench/alert_drain.py's rates.

    python bench/properties.py [--packets 200000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ftel.mqtt_properties import PAHO_METHODS, install


class PahoProperties(Properties):
    """paho's own methods, as before ``install``."""


for _name, _method in PAHO_METHODS.items():
    setattr(PahoProperties, _name, _method)


def per_packet_us(cls: type[Properties], block: bytes, packets: int) -> float:
    began = time.perf_counter()
    for _ in range(packets):
        cls(PacketTypes.PUBLISH).unpack(block)
    return (time.perf_counter() - began) / packets * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packets", type=int, default=200_000)
    args = parser.parse_args()
    if not install():
        raise SystemExit("this paho-mqtt's Properties cannot share its tables (see the log)")
    with_alias = PahoProperties(PacketTypes.PUBLISH)
    with_alias.TopicAlias = 7
    blocks = {"no property": b"\x00", "one property (a topic alias)": with_alias.pack()}
    for label, block in blocks.items():
        paho = per_packet_us(PahoProperties, block, args.packets)
        shared = per_packet_us(Properties, block, args.packets)
        print(f"{label}: paho {paho:.1f} µs, shared tables {shared:.1f} µs per packet ({shared / paho:.2f} of paho's)")


if __name__ == "__main__":
    main()
