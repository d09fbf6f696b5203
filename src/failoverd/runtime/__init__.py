"""The asyncio side: sockets, timers, scripts and checks around the sans-I/O core."""
