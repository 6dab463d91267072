"""The store: the tables, the connections that speak SQL to them, and what is read from them."""
