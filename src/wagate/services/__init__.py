"""What the API and the command line both call: accounts, sending, transfer of sessions."""
