"""The ``neonize`` engine: real WhatsApp through whatsmeow, as the neonize package binds it (see ``engine``)."""
