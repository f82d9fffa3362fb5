"""Events fanned out inside a process (the bus its WebSocket clients subscribe to) and between workers (the peer
channel on PostgreSQL's notifications)."""
