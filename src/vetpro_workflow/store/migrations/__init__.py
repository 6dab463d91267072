"""The store's migrations (Alembic): the only way its schema is created and upgraded."""
