"""Hardware model: configuration, cost ledger, crossbar arrays and transpose emulation."""
