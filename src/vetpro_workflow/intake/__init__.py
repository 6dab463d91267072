"""Application and call documents: reading them (documents) and filing them (filing)."""
