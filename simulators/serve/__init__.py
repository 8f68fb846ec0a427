"""Simulated machines served as real controllers on loopback: Modbus TCP (pymodbus) and OPC UA (asyncua, with
the OPC 40001-1 Machinery building blocks), driven by the seeded machine models on the plant's clock, so the
ledger stays the ground truth and a gateway reads them exactly as it reads a real controller."""
