"""Building blocks shared by every architecture in the spec space."""
