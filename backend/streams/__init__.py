"""Live streams at scale: one reader per process (hub), an asyncio server on the API's port."""
