"""Drivers for real controllers: Modbus TCP (pymodbus) and OPC UA (asyncua), polled on one asyncio loop per
gateway (gateway/drivers/poll.py), built from a gateway configuration (gateway/drivers/build.py)."""
