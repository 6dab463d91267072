"""For trying the product: the demonstration and a local mail sink; not part of the product."""
