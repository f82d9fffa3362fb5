"""0014: a chat's messages indexed by their time, the order WAHA's lists give them in (``sortBy=timestamp``).

A page of a chat's messages, after an offset or after a cursor (the last message's time and sequence number), reads
the index in order instead of sorting every message of the chat.
"""

STATEMENTS = ("CREATE INDEX ix_messages_chat_time ON messages (session_id, chat_id, timestamp, seq)",)
