"""Energy services in the firmware: the energy manager's plan, taken from the bus and followed."""
