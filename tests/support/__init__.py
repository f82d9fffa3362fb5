"""What the tests share: settings and services, builders, fixtures, servers on loopback, process starters, the
stack of real processes, and damage made on purpose. Test modules import from here, never from one another."""
