"""The supervisor: drives every session toward what its tenant wants, and keeps it there."""
